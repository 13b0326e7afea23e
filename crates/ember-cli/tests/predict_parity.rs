//! `ember predict` on ResNet-18 with torchvision-named weights and no preprocessing flags gives
//! PyTorch's top-5 probabilities (ember-finetune's tests/fixtures/gen_resnet18_parity.py): the
//! command must apply torchvision's ImageNet normalisation to ResNet inputs by itself.

mod common;

#[path = "../../ember-finetune/tests/support/hashed_weights.rs"]
mod hashed_weights;

use common::ember;

#[test]
fn predict_resnet18_matches_pytorch_top5() {
    let reference = hashed_weights::reference();
    let (_dir, weights) = hashed_weights::saved_hashed_state(&reference);

    let out = ember(&[
        "predict",
        "--model",
        "resnet18",
        "--weights",
        weights.to_str().unwrap(),
        reference.image.to_str().unwrap(),
        "--top",
        "5",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let top = json["predictions"][0]["top"].as_array().unwrap();
    let got: Vec<(usize, f32)> = top
        .iter()
        .map(|p| (p["class"].as_u64().unwrap() as usize, p["probability"].as_f64().unwrap() as f32))
        .collect();
    assert_eq!(got.len(), 5);
    for ((class, p), (want_class, want_p)) in got.iter().zip(&reference.top5) {
        assert_eq!(class, want_class, "top 5 {got:?}, PyTorch {:?}", reference.top5);
        assert!((p - want_p).abs() < 1e-4, "class {class}: {p} vs PyTorch {want_p}");
    }
}
