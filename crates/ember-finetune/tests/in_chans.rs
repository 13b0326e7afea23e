//! Pretrained RGB weights in models built for other input channels (timm's `adapt_input_conv`,
//! applied by `FineTuneModel::pretrained`): a grey image through the adapted model gives what the
//! RGB model gives on that grey copied to R, G and B; six channels holding RGB twice give what
//! the RGB model gives on RGB.

use candle_core::{DType, Device, Tensor};
use candle_nn::ModuleT;
use ember_finetune::FineTuneModel;
use ember_layers::ParamStore;
use ember_zoo::ModelOptions;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn adapted_stems_reproduce_the_rgb_model_on_replicated_channels() {
    let dir = tempfile::tempdir().unwrap();
    for (name, stem) in [("resnet18", "conv1.weight"), ("efficientnet-lite0", "_conv_stem.weight")] {
        let weights = dir.path().join(format!("{name}.safetensors"));
        let donor = ParamStore::new(5, &Device::Cpu);
        ember_zoo::build_with(name, &ModelOptions::new((3, 32, 32), 10), donor.var_builder(DType::F32)).unwrap();
        // Fresh convolutions (PyTorch's default, variance 1 / (3 fan_in)) shrink the signal so
        // much over EfficientNet's 50 layers that its logits do not depend on the input; at
        // He's variance they do, so the comparison below means something.
        for (n, t) in donor.state() {
            if t.rank() == 4 {
                donor.assign(&n, &(t * 6f64.sqrt()).unwrap()).unwrap();
            }
        }
        ember_train::checkpoint::save(&donor, &weights).unwrap();
        let rgb = FineTuneModel::pretrained(name, &ModelOptions::new((3, 32, 32), 10), &weights, &[], 0).unwrap();

        let grey_image = Tensor::rand(0f32, 1.0, (2, 1, 32, 32), &Device::Cpu).unwrap();
        let expected = rgb.network.forward_t(&grey_image.repeat((1, 3, 1, 1)).unwrap(), false).unwrap();
        let spread = max_abs_diff(&expected.get(0).unwrap(), &expected.get(1).unwrap());
        assert!(spread > 1e-2, "{name}: two images give the same logits (spread {spread})");
        for channels in [1, 6] {
            let model =
                FineTuneModel::pretrained(name, &ModelOptions::new((channels, 32, 32), 10), &weights, &[], 0).unwrap();
            assert!(model.report.is_complete() && model.report.skipped.is_empty(), "{}", model.report.summary());
            assert_eq!(model.store.get(stem).unwrap().dims()[1], channels);
            let input = grey_image.repeat((1, channels, 1, 1)).unwrap();
            let diff = max_abs_diff(&model.network.forward_t(&input, false).unwrap(), &expected);
            eprintln!("{name}, {channels} channels: max logit difference {diff:e}");
            assert!(diff < 1e-5, "{name}, {channels} channels: logits differ by {diff}");
        }
    }
}

#[test]
fn two_channels_take_red_and_green_and_grey_weights_cannot_become_rgb() {
    // Two channels are RGB's R and G scaled by 3/2 (timm's rule), not an error.
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("resnet18.safetensors");
    let donor = ParamStore::new(5, &Device::Cpu);
    ember_zoo::build_with("resnet18", &ModelOptions::new((3, 32, 32), 10), donor.var_builder(DType::F32)).unwrap();
    ember_train::checkpoint::save(&donor, &weights).unwrap();
    let two = FineTuneModel::pretrained("resnet18", &ModelOptions::new((2, 32, 32), 10), &weights, &[], 0).unwrap();
    let adapted = two.store.get("conv1.weight").unwrap().as_tensor().clone();
    let rgb = donor.get("conv1.weight").unwrap().as_tensor().clone();
    assert_eq!(max_abs_diff(&adapted, &(rgb.narrow(1, 0, 2).unwrap() * 1.5).unwrap()), 0.0);

    // A grey checkpoint cannot become RGB: the error names the stem.
    let one = FineTuneModel::pretrained("resnet18", &ModelOptions::new((1, 32, 32), 10), &weights, &[], 0).unwrap();
    let one_weights = dir.path().join("one.safetensors");
    ember_train::checkpoint::save(&one.store, &one_weights).unwrap();
    let err = FineTuneModel::pretrained("resnet18", &ModelOptions::new((3, 32, 32), 10), &one_weights, &[], 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("conv1.weight") && err.contains("1-channel"), "{err}");
}
