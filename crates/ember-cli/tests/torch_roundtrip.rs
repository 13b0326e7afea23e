//! The other direction of checkpoint parity: a ResNet-18 that `ember finetune` saved loads into
//! torchvision's `resnet18` with `strict=True` and gives ember's probabilities. Runs when
//! `EMBER_TORCH_PYTHON` names a Python with torch, torchvision and safetensors.

mod common;
#[path = "../../ember-io/tests/support/test_env.rs"]
mod test_env;

use common::{ember, path_in_tempdir};

#[test]
fn finetuned_resnet18_loads_strictly_into_torchvision_with_the_same_probabilities() {
    let Some(python) = test_env::python("EMBER_TORCH_PYTHON", "a python with torch, torchvision and safetensors")
    else {
        return;
    };
    let (tmp, run) = path_in_tempdir("run");
    // 64 px: the ImageNet stem, as torchvision builds it (32 px and less would take the CIFAR stem).
    let out = ember(&[
        "finetune",
        "--mode",
        "scratch",
        "--model",
        "resnet18",
        "--dataset",
        "mnist-sample",
        "--per-class",
        "5",
        "--size",
        "64",
        "--head-epochs",
        "0",
        "--epochs",
        "1",
        "--test-limit",
        "20",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let model = run.join("model.safetensors");
    // 73 = floor(64 / 0.875) px a side: the evaluation resize is the identity in both
    // frameworks, so the comparison is of the networks, not of two resamplers.
    let image = tmp.path().join("img.png");
    image::RgbImage::from_fn(73, 73, |x, y| image::Rgb([(x * 3) as u8, (y * 3) as u8, ((x * y) % 251) as u8]))
        .save(&image)
        .unwrap();
    let out =
        ember(&["predict", "--weights", model.to_str().unwrap(), image.to_str().unwrap(), "--top", "10", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let mut ours = [0f64; 10];
    for t in result["predictions"][0]["top"].as_array().unwrap() {
        ours[t["class"].as_u64().unwrap() as usize] = t["probability"].as_f64().unwrap();
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_predict.py");
    let torch = std::process::Command::new(python)
        .args([script.to_str().unwrap(), model.to_str().unwrap(), image.to_str().unwrap(), "10", "64"])
        .output()
        .unwrap();
    assert!(torch.status.success(), "{}", String::from_utf8_lossy(&torch.stderr));
    let theirs: Vec<f64> = serde_json::from_str(String::from_utf8_lossy(&torch.stdout).trim()).unwrap();
    let max_diff = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(max_diff < 1e-5, "ember {ours:?} vs torchvision {theirs:?}: max difference {max_diff}");
    eprintln!("max probability difference, ember vs torchvision: {max_diff:.2e}");
}
