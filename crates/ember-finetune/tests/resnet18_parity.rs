//! ResNet-18 with torchvision's parameter names against PyTorch: hashed weights that
//! `tests/fixtures/gen_resnet18_parity.py` and this test build identically, a real image file, and
//! torchvision's ImageNet preprocessing; every softmax probability within 1e-4 (within 1e-5 for
//! the network alone, on torchvision's resized crop).

#[path = "support/hashed_weights.rs"]
mod hashed_weights;

use candle_core::DType;
use candle_nn::ModuleT;
use ember_finetune::{FineTuneModel, ImagePreprocess, IMAGENET_MEAN, IMAGENET_STD};
use ember_zoo::ModelOptions;

#[test]
fn hashed_weights_match_the_script_bit_for_bit() {
    let text = std::fs::read_to_string(hashed_weights::fixtures().join("resnet18_parity.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let reference = hashed_weights::reference();
    for (name, values) in json["samples"].as_object().unwrap() {
        let shape = &reference.keys.iter().find(|(k, _)| k == name).unwrap().1;
        let ours = hashed_weights::hashed_tensor(name, shape, hashed_weights::resnet18_q(name))
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (i, v) in values.as_array().unwrap().iter().enumerate() {
            assert_eq!(ours[i].to_bits(), (v.as_f64().unwrap() as f32).to_bits(), "{name}[{i}]");
        }
    }
}

#[test]
fn resnet18_with_torchvision_names_reproduces_pytorch_probabilities() {
    let reference = hashed_weights::reference();
    let (_dir, weights) = hashed_weights::saved_hashed_state(&reference);

    let options = ModelOptions::new((3, 224, 224), 1000);
    let model = FineTuneModel::pretrained("resnet18", &options, &weights, &[], 0).unwrap();
    assert!(model.report.is_complete() && model.report.skipped.is_empty(), "{}", model.report.summary());
    // Every torchvision key but the 20 num_batches_tracked counters is one of ember's tensors.
    assert_eq!(model.report.loaded.len(), reference.keys.len() - 20);

    // The network alone, on the crop torchvision's resizing made (resizing 224 to 224 is the
    // identity), then the whole pipeline from the image file.
    let network_only = ImagePreprocess { resize: 224, crop: 224, mean: IMAGENET_MEAN, std: IMAGENET_STD };
    let (class, diff) = max_difference(&model, &network_only, &reference.crop, &reference.probabilities);
    eprintln!("resnet18 parity, torchvision's crop: max |p - p_torch| = {diff:e} (class {class})");
    assert!(diff < 1e-5, "network alone: class {class} differs by {diff}");

    let preprocess = ImagePreprocess { resize: 256, crop: 224, mean: IMAGENET_MEAN, std: IMAGENET_STD };
    let (class, diff) = max_difference(&model, &preprocess, &reference.image, &reference.probabilities);
    eprintln!("resnet18 parity, whole pipeline: max |p - p_torch| = {diff:e} (class {class})");
    assert!(diff < 1e-4, "whole pipeline: class {class} differs by {diff}");
}

/// The class whose probability differs most from `expected`, and by how much; also checks the
/// top 5 classes' order.
fn max_difference(
    model: &FineTuneModel,
    preprocess: &ImagePreprocess,
    image: &std::path::Path,
    expected: &[f32],
) -> (usize, f32) {
    let x = preprocess.load(image).unwrap().unsqueeze(0).unwrap();
    let logits = model.network.forward_t(&x, false).unwrap();
    let probs = candle_nn::ops::softmax(&logits, 1).unwrap().squeeze(0).unwrap();
    let probs = probs.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(probs.len(), expected.len());
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let mut expected_order = order.clone();
    expected_order.sort_by(|&a, &b| expected[b].total_cmp(&expected[a]));
    assert_eq!(order[..5], expected_order[..5], "top 5 classes");
    probs.iter().zip(expected).map(|(a, b)| (a - b).abs()).enumerate().fold((0, 0f32), |worst, (i, d)| {
        if d > worst.1 {
            (i, d)
        } else {
            worst
        }
    })
}
