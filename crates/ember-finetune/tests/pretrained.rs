//! Loading into zoo models: strict and lenient reports, renaming, head replacement, and the real
//! EfficientNet-Lite0 checkpoint against PyTorch's logits.

#[path = "../../ember-io/tests/support/test_env.rs"]
mod test_env;

use test_env::shared_dir;

use candle_core::{DType, Device, Tensor};
use candle_nn::ModuleT;
use ember_finetune::{convert_to_safetensors, load_state, FineTuneModel, ImagePreprocess, LoadOptions, RenameRule};
use ember_layers::ParamStore;
use ember_zoo::ModelOptions;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn mlp_state(seed: u64) -> Vec<(String, Tensor)> {
    let store = ParamStore::new(seed, &Device::Cpu);
    ember_zoo::build_with("mlp", &ModelOptions::mnist(), store.var_builder(DType::F32)).unwrap();
    store.state()
}

#[test]
fn strict_loading_refuses_mismatches_and_loads_nothing() {
    let store = ParamStore::new(0, &Device::Cpu);
    ember_zoo::build_with("mlp", &ModelOptions::mnist(), store.var_builder(DType::F32)).unwrap();
    let before = store.state();
    let mut other = mlp_state(1);
    other.retain(|(n, _)| n != "fc1.bias"); // missing
    other.push(("extra.weight".into(), Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap())); // unexpected
    let fc3 = other.iter_mut().find(|(n, _)| n == "fc3.weight").unwrap();
    fc3.1 = Tensor::zeros((5, 128), DType::F32, &Device::Cpu).unwrap(); // mismatched
    let err = load_state(&store, other.clone(), &LoadOptions::strict(), "other.safetensors").unwrap_err();
    let msg = err.to_string();
    for needle in ["other.safetensors", "fc1.bias", "extra.weight", "fc3.weight", "[10, 128]", "[5, 128]"] {
        assert!(msg.contains(needle), "{needle} not in: {msg}");
    }
    for ((n, a), (_, b)) in before.iter().zip(store.state()) {
        assert_eq!(max_abs_diff(a, &b), 0.0, "{n} changed by a failed strict load");
    }

    let report = load_state(&store, other, &LoadOptions::lenient(), "other").unwrap();
    assert_eq!(report.missing, vec!["fc1.bias"]);
    assert_eq!(report.unexpected, vec!["extra.weight"]);
    assert_eq!(report.mismatched.len(), 1);
    assert_eq!(
        (report.mismatched[0].model.clone(), report.mismatched[0].checkpoint.clone()),
        (vec![10, 128], vec![5, 128])
    );
    assert_eq!(report.loaded.len(), 4);
    let donor: std::collections::HashMap<_, _> = mlp_state(1).into_iter().collect();
    let now: std::collections::HashMap<_, _> = store.state().into_iter().collect();
    assert_eq!(max_abs_diff(&now["fc2.weight"], &donor["fc2.weight"]), 0.0);
    assert!(max_abs_diff(&now["fc3.weight"], &donor["fc3.weight"]) > 0.0);
}

#[test]
fn renaming_rules_map_foreign_keys_onto_the_model() {
    let store = ParamStore::new(0, &Device::Cpu);
    ember_zoo::build_with("mlp", &ModelOptions::mnist(), store.var_builder(DType::F32)).unwrap();
    // As saved from `nn.DataParallel(model)` with layers called `dense{i}`.
    let foreign: Vec<(String, Tensor)> =
        mlp_state(3).into_iter().map(|(n, t)| (format!("module.{}", n.replace("fc", "dense")), t)).collect();
    assert!(load_state(&store, foreign.clone(), &LoadOptions::strict(), "dp").is_err());
    let options = LoadOptions::strict()
        .with_rule(RenameRule::strip_prefix("module."))
        .with_rule(RenameRule::regex(r"^dense(\d)", "fc$1").unwrap());
    let report = load_state(&store, foreign, &options, "dp").unwrap();
    assert!(report.is_complete());
    assert_eq!(report.loaded.len(), 6);
}

#[test]
fn pretrained_model_gets_a_new_head_for_other_classes() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("mlp.safetensors");
    let store = ParamStore::new(7, &Device::Cpu);
    ember_zoo::build_with("mlp", &ModelOptions::mnist(), store.var_builder(DType::F32)).unwrap();
    ember_train::checkpoint::save(&store, &weights).unwrap();

    let options = ModelOptions::new((1, 28, 28), 4);
    let model = FineTuneModel::pretrained("mlp", &options, &weights, &[], 0).unwrap();
    assert_eq!(model.head.head, "fc3");
    assert_eq!(model.report.skipped, vec!["fc3.bias", "fc3.weight"]);
    assert_eq!(model.report.loaded.len(), 4);
    let x = Tensor::rand(0f32, 1.0, (2, 1, 28, 28), &Device::Cpu).unwrap();
    assert_eq!(model.forward_t(&x, false).unwrap().dims(), &[2, 4]);
    // Same classes: the head is loaded too and the outputs agree with the source model.
    let same = FineTuneModel::pretrained("mlp", &ModelOptions::mnist(), &weights, &[], 0).unwrap();
    assert!(same.report.skipped.is_empty() && same.report.is_complete());
    let source = ember_zoo::build_with("mlp", &ModelOptions::mnist(), store.var_builder(DType::F32)).unwrap();
    assert_eq!(max_abs_diff(&same.forward_t(&x, false).unwrap(), &source.forward_t(&x, false).unwrap()), 0.0);
}

/// The shared assets directory (`EMBER_SHARED_DIR`), or `None` after printing one skip line:
/// plain `cargo test` on a fresh clone passes, and `cargo xtask ci` reports the skip loudly.
#[test]
fn shared_efficientnet_lite0_reproduces_pytorch_logits() {
    let Some(shared) = shared_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let converted = dir.path().join("lite0.safetensors");
    let pth = shared.join("weights/efficientnet-lite0/efficientnet-lite0-57934424.pth");
    assert_eq!(convert_to_safetensors(&pth, &converted).unwrap(), 296);
    let model =
        FineTuneModel::pretrained("efficientnet-lite0", &ModelOptions::new((3, 224, 224), 1000), &converted, &[], 0)
            .unwrap();
    assert!(model.report.is_complete() && model.report.skipped.is_empty(), "{}", model.report.summary());
    assert_eq!(model.report.loaded.len(), 296 - 49, "every tensor but num_batches_tracked");

    let reference = candle_core::safetensors::load(
        shared.join("weights/efficientnet-lite0/reference-io.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let classes = std::fs::read_to_string(shared.join("data/imagenet_classes.txt")).unwrap();
    let espresso = classes.lines().position(|l| l.trim() == "espresso").unwrap();
    for name in ["coffee", "ramp"] {
        let logits = model.network.forward_t(&reference[&format!("{name}_input")], false).unwrap();
        let diff = max_abs_diff(&logits, &reference[&format!("{name}_logits")]);
        assert!(diff < 1e-4, "{name}: max abs difference {diff}");
        if name == "coffee" {
            assert_eq!(logits.argmax(1).unwrap().to_vec1::<u32>().unwrap(), vec![espresso as u32]);
        }
    }
}

#[test]
fn shared_imagenet_preprocessing_matches_the_reference_input() {
    let Some(shared) = shared_dir() else { return };
    let reference = candle_core::safetensors::load(
        shared.join("weights/efficientnet-lite0/reference-io.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let ours = ImagePreprocess::efficientnet_lite().load(&shared.join("images/coffee.png")).unwrap();
    let expected = reference["coffee_input"].squeeze(0).unwrap();
    assert_eq!(ours.dims(), expected.dims());
    let diff = (&ours - &expected).unwrap().abs().unwrap();
    let max = diff.flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    let mean = diff.mean_all().unwrap().to_scalar::<f32>().unwrap();
    eprintln!("preprocessing vs reference: max {max}, mean {mean}");
    // One grey level is 2/255 after (x - 0.5) / 0.5; antialiasing filters may differ by that.
    assert!(max <= 2.0 / 255.0 + 1e-6, "max abs difference {max}");
    assert!(mean < 1e-3, "mean abs difference {mean}");
}

#[test]
fn preprocessing_refuses_sizes_and_strips_that_would_need_gigabytes() {
    // A 20000x1 strip: resizing its shorter side to 256 would make 1.3 gigapixels.
    let strip = image::RgbImage::new(20_000, 1);
    let err = ImagePreprocess::efficientnet_lite().apply(&strip).unwrap_err().to_string();
    assert!(err.contains("20000x1") && err.contains("exceed"), "{err}");
    let tall = image::RgbImage::new(1, 4_000_000);
    assert!(ImagePreprocess::efficientnet_lite().apply(&tall).is_err());
    for (resize, crop) in [(100_000, 224), (256, 100_000), (0, 224), (256, 0)] {
        let p = ImagePreprocess { resize, crop, ..ImagePreprocess::efficientnet_lite() };
        assert!(p.validate().is_err(), "resize {resize} crop {crop} accepted");
    }
    // An ordinary photo shape still works.
    let photo = image::RgbImage::new(400, 300);
    assert_eq!(ImagePreprocess::efficientnet_lite().apply(&photo).unwrap().dims(), &[3, 224, 224]);
}
