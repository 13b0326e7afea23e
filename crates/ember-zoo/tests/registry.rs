//! The registry: parameter counts, PyTorch `state_dict` names and shapes, every model building
//! for MNIST-sized input, layer tables.

use candle_core::{DType, Device, Tensor};
use candle_nn::ModuleT;
use ember_layers::ParamStore;
use ember_zoo::{count_parameters, state_shapes, summarize, ModelOptions, Task, MODELS};

fn imagenet() -> ModelOptions {
    ModelOptions::new((3, 224, 224), 1000)
}

/// `name dim,dim` lines written by `fixtures/gen_state_names.py`.
fn fixture(file: &str) -> Vec<(String, Vec<usize>)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut rows: Vec<(String, Vec<usize>)> = text
        .lines()
        .map(|line| {
            let (name, dims) = line.split_once(' ').unwrap();
            let dims = dims.split(',').filter(|d| !d.is_empty()).map(|d| d.parse().unwrap()).collect();
            (name.to_string(), dims)
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn parameter_counts_match_torchvision_and_the_lite0_checkpoint() {
    assert_eq!(count_parameters("resnet18", &imagenet()).unwrap(), 11_689_512);
    assert_eq!(count_parameters("resnet34", &imagenet()).unwrap(), 21_797_672);
    assert_eq!(count_parameters("resnet50", &imagenet()).unwrap(), 25_557_032);
    assert_eq!(count_parameters("efficientnet-lite0", &imagenet()).unwrap(), 4_652_008);
}

#[test]
fn efficientnet_lite_variants_have_the_published_sizes() {
    // TF EfficientNet-Lite README: Lite1 5.4M, Lite2 6.1M, Lite3 8.2M, Lite4 13.0M parameters.
    for (variant, millions) in [(1, 5.4), (2, 6.1), (3, 8.2), (4, 13.0)] {
        let name = format!("efficientnet-lite{variant}");
        let n = count_parameters(&name, &imagenet()).unwrap() as f64 / 1e6;
        assert!((n - millions).abs() < 0.05, "{name}: {n:.3}M parameters, published {millions}M");
    }
}

#[test]
fn efficientnet_lite0_state_names_and_shapes_equal_the_checkpoint() {
    assert_eq!(state_shapes("efficientnet-lite0", &imagenet()).unwrap(), fixture("efficientnet_lite0_state.txt"));
}

#[test]
fn resnet_state_names_and_shapes_equal_torchvision() {
    assert_eq!(state_shapes("resnet18", &imagenet()).unwrap(), fixture("resnet18_state.txt"));
    assert_eq!(state_shapes("resnet50", &imagenet()).unwrap(), fixture("resnet50_state.txt"));
}

#[test]
fn param_store_holds_the_checkpoint_names_as_parameters_and_buffers() {
    let store = ParamStore::new(0, &Device::Cpu);
    ember_zoo::build_with("efficientnet-lite0", &imagenet(), store.var_builder(DType::F32)).unwrap();
    let state: Vec<(String, Vec<usize>)> =
        store.state().into_iter().map(|(name, t)| (name, t.dims().to_vec())).collect();
    assert_eq!(state, fixture("efficientnet_lite0_state.txt"));
    assert_eq!(store.num_parameters(), 4_652_008);
    assert!(store.buffer_names().contains(&"_blocks.15._bn2.running_var".to_string()));
}

#[test]
fn every_classifier_accepts_mnist_sized_input() {
    let x = Tensor::arange(0f32, 2.0 * 784.0, &Device::Cpu).unwrap().reshape((2, 1, 28, 28)).unwrap();
    let x = (x / 1568.0).unwrap();
    for info in MODELS {
        let store = ParamStore::new(1, &Device::Cpu);
        let model = ember_zoo::build_with(info.name, &ModelOptions::mnist(), store.var_builder(DType::F32)).unwrap();
        let y = model.forward_t(&x, false).unwrap();
        match info.task {
            Task::Classification => assert_eq!(y.dims(), &[2, 10], "{}", info.name),
            Task::Generation => assert_eq!(y.dims(), &[2, 1, 28, 28], "{}", info.name),
        }
        assert!(store.num_parameters() > 0, "{}", info.name);
    }
}

#[test]
fn unknown_names_and_unsuitable_inputs_are_typed_errors() {
    let store = ParamStore::new(0, &Device::Cpu);
    let Err(err) = ember_zoo::build("resnet-9000", store.var_builder(DType::F32)) else {
        panic!("built an unknown model")
    };
    assert!(matches!(err, ember_zoo::Error::UnknownModel { .. }), "{err}");
    assert!(err.to_string().contains("resnet18"), "{err}");
    let err = ember_zoo::build_with("lenet5", &ModelOptions::new((1, 40, 40), 10), store.var_builder(DType::F32))
        .unwrap_err();
    assert!(err.to_string().contains("28x28 or 32x32"), "{err}");
    let err = ember_zoo::build_vae("resnet18", &ModelOptions::mnist(), store.var_builder(DType::F32)).unwrap_err();
    assert!(matches!(err, ember_zoo::Error::WrongTask { .. }), "{err}");
}

#[test]
fn resnet18_summary_lists_every_layer_with_224px_shapes() {
    let summary = summarize("resnet18", &imagenet()).unwrap();
    assert_eq!(summary.total_params, 11_689_512);
    assert_eq!(summary.layers.iter().map(|l| l.params).sum::<usize>(), summary.total_params);
    let shape = |name: &str| summary.layers.iter().find(|l| l.name == name).unwrap().output.clone();
    assert_eq!(shape("conv1"), vec![1, 64, 112, 112]);
    assert_eq!(shape("maxpool"), vec![1, 64, 56, 56]);
    assert_eq!(shape("layer2.0.downsample.1"), vec![1, 128, 28, 28]);
    assert_eq!(shape("layer4.1.bn2"), vec![1, 512, 7, 7]);
    assert_eq!(shape("fc"), vec![1, 1000]);
    // 20 convolutions (incl. 3 downsample), 20 batch norms.
    assert_eq!(
        summary
            .layers
            .iter()
            .filter(|l| l.name.ends_with("conv1") || l.name.ends_with("conv2") || l.name.ends_with("downsample.0"))
            .count(),
        20
    );
}

#[test]
fn every_model_summary_adds_up() {
    for info in MODELS {
        let options = info.default_options();
        if options.input.1 > 64 {
            continue; // the large models are covered above; keep the suite fast
        }
        let summary = summarize(info.name, &options).unwrap();
        assert_eq!(summary.total_params, count_parameters(info.name, &options).unwrap(), "{}", info.name);
        assert_eq!(summary.layers.iter().map(|l| l.params).sum::<usize>(), summary.total_params, "{}", info.name);
    }
}

#[test]
fn mnist_models_have_the_documented_sizes() {
    let mnist = ModelOptions::mnist();
    assert_eq!(count_parameters("mnist-cnn", &mnist).unwrap(), 225_034);
    assert_eq!(count_parameters("mlp", &mnist).unwrap(), 235_146);
    assert_eq!(count_parameters("lenet5", &mnist).unwrap(), 61_706);
    // LSTM: 4 * 128 * (28 + 128 + 2) per direction; fc: 2 * 128 * 10 + 10.
    assert_eq!(count_parameters("bilstm", &mnist).unwrap(), 2 * 4 * 128 * (28 + 128 + 2) + 2 * 128 * 10 + 10);
    assert_eq!(count_parameters("gru", &mnist).unwrap(), 3 * 128 * (28 + 128 + 2) + 128 * 10 + 10);
}

#[test]
fn resnet_switches_to_the_cifar_stem_for_small_inputs() {
    let shapes = state_shapes("resnet18", &ModelOptions::mnist()).unwrap();
    let conv1 = shapes.iter().find(|(n, _)| n == "conv1.weight").unwrap();
    assert_eq!(conv1.1, vec![64, 1, 3, 3]);
    let shapes = state_shapes("resnet18", &ModelOptions::new((1, 64, 64), 10)).unwrap();
    let conv1 = shapes.iter().find(|(n, _)| n == "conv1.weight").unwrap();
    assert_eq!(conv1.1, vec![64, 1, 7, 7]);
}

#[test]
fn class_counts_and_inputs_from_files_are_bounded_before_allocating() {
    let store = ParamStore::new(0, &Device::Cpu);
    // A checkpoint head of 10^8 classes would make a head of hundreds of gigabytes.
    let huge = ModelOptions::new((1, 28, 28), 100_000_000);
    let err = ember_zoo::build_with("mlp", &huge, store.var_builder(DType::F32)).unwrap_err().to_string();
    assert!(err.contains("100000000") && err.contains(&ember_zoo::MAX_CLASSES.to_string()), "{err}");
    let wide = ModelOptions::new((3, 100_000, 100_000), 10);
    assert!(ember_zoo::build_with("resnet18", &wide, store.var_builder(DType::F32)).is_err());
    assert!(summarize("resnet18", &ModelOptions::new((3, 4096, 4096), 10)).is_err());
    assert!(store.names().is_empty(), "a refused model allocated parameters");
}

#[test]
fn vgg_small_without_batch_norm_has_conv_biases_and_no_bn_tensors() {
    let with = state_shapes("vgg-small", &ModelOptions::mnist()).unwrap();
    let without = state_shapes("vgg-small", &ModelOptions { batch_norm: false, ..ModelOptions::mnist() }).unwrap();
    let names = |s: &[(String, Vec<usize>)]| s.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let (with, without) = (names(&with), names(&without));
    assert!(with.iter().any(|n| n == "features.1.running_mean"), "{with:?}");
    assert!(!with.iter().any(|n| n == "features.0.bias"));
    assert!(without.iter().any(|n| n == "features.0.bias"), "{without:?}");
    assert!(!without.iter().any(|n| n.contains("running") || n == "features.1.weight"), "{without:?}");
    // Six BNs (weight, bias, running mean and variance) go; six conv biases come.
    assert_eq!(with.len() - without.len(), 6 * 4 - 6);
    // Without BN it still trains and predicts.
    let store = ParamStore::new(0, &Device::Cpu);
    let options = ModelOptions { batch_norm: false, dropout: Some(0.0), ..ModelOptions::mnist() };
    let net = ember_zoo::build_with("vgg-small", &options, store.var_builder(DType::F32)).unwrap();
    let x = Tensor::zeros((2, 1, 28, 28), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(net.forward_t(&x, true).unwrap().dims(), &[2, 10]);
}

#[test]
fn dropout_and_batch_norm_switches_are_refused_where_a_model_has_none() {
    let vb = |s: &ParamStore| s.var_builder(DType::F32);
    let store = ParamStore::new(0, &Device::Cpu);
    let err =
        ember_zoo::build_with("mnist-cnn", &ModelOptions { dropout: Some(0.5), ..ModelOptions::mnist() }, vb(&store))
            .err()
            .unwrap()
            .to_string();
    assert!(err.contains("mnist-cnn") && err.contains("dropout") && err.contains("vgg-small"), "{err}");
    let err = ember_zoo::build_with("resnet18", &ModelOptions { batch_norm: false, ..imagenet() }, vb(&store))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("resnet18") && err.contains("batch norm"), "{err}");
    let err =
        ember_zoo::build_with("vgg-small", &ModelOptions { dropout: Some(1.0), ..ModelOptions::mnist() }, vb(&store))
            .err()
            .unwrap()
            .to_string();
    assert!(err.contains("dropout probability 1"), "{err}");
}

#[test]
fn the_defaults_point_at_the_models_their_commands_need() {
    use ember_zoo::{info, Architecture, Task, DEFAULT_CLASSIFIER, DEFAULT_PRETRAINED, DEFAULT_STUDENT};
    let classifier = info(DEFAULT_CLASSIFIER).unwrap();
    assert_eq!((classifier.input, classifier.task), ((1, 28, 28), Task::Classification));
    assert_eq!(classifier.architecture, Architecture::MnistCnn);
    let student = info(DEFAULT_STUDENT).unwrap();
    assert_eq!((student.input, student.architecture), ((1, 28, 28), Architecture::Mlp));
    let pretrained = info(DEFAULT_PRETRAINED).unwrap();
    assert_eq!(pretrained.architecture, Architecture::EfficientNetLite(0));
    assert!(pretrained.pretrained.is_some());
}
