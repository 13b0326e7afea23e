//! `ember bench`: throughput of zoo classifiers, human lines and a final JSON line.

mod common;

use common::{ember, last_json, ok, ok_json};

#[test]
fn bench_reports_training_and_inference_throughput_as_json() {
    let out = ember(&[
        "bench",
        "--model",
        "lenet5",
        "--batch-size",
        "8",
        "--warmup",
        "1",
        "--batches",
        "3",
        "--threads",
        "1",
        "--json",
    ]);
    let stdout = ok(&out);
    let last = last_json(&stdout);
    assert_eq!(last["model"], "lenet5");
    assert_eq!(last["threads"], 1);
    assert_eq!(last["batch_size"], 8);
    for key in ["train_images_per_s", "infer_images_per_s"] {
        let v = last[key].as_f64().unwrap();
        assert!(v.is_finite() && v > 0.0, "{key} = {v}");
    }
    assert!(stdout.contains("images/s"));
}

#[test]
fn bench_uses_real_images_of_a_dataset_and_refuses_generative_models() {
    let out = ember(&[
        "bench",
        "--model",
        "mnist-cnn",
        "--dataset",
        "mnist-sample",
        "--batch-size",
        "16",
        "--warmup",
        "1",
        "--batches",
        "2",
        "--json",
    ]);
    let last = ok_json(&out);
    assert_eq!(last["data"], "mnist-sample");
    assert_eq!(last["input"], serde_json::json!([1, 28, 28]));

    let out = ember(&["bench", "--model", "vae-mlp"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a classifier"));
}

#[test]
fn bench_can_train_the_head_alone_on_a_frozen_backbone() {
    let args = ["bench", "--model", "mnist-cnn", "--batch-size", "8", "--warmup", "1", "--batches", "2", "--json"];
    let out = ember(&[&args[..], &["--freeze-backbone"]].concat());
    let last = ok_json(&out);
    assert_eq!(last["freeze_backbone"], true);
    assert!(last["train_images_per_s"].as_f64().is_some_and(|v| v.is_finite() && v > 0.0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("(frozen backbone)"));
    assert_eq!(ok_json(&ember(&args))["freeze_backbone"], false);
}
