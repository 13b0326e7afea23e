//! `ember finetune` writes a run directory like `ember train`'s, its checkpoint carries a model
//! card that `eval` uses on its own, and `--resume` continues from the saved settings.

mod common;

use common::{assert_one_line_error, ember, last_json, ok, path_in_tempdir};
use serde_json::Value;

#[test]
fn finetune_run_directory_eval_and_resume() {
    let (tmp, dir) = path_in_tempdir("ft");
    let d = dir.to_str().unwrap();
    let first = ok(&ember(&[
        "finetune",
        "--mode",
        "scratch",
        "--model",
        "mlp",
        "--dataset",
        "mnist-sample",
        "--per-class",
        "20",
        "--head-epochs",
        "1",
        "--epochs",
        "2",
        "--test-limit",
        "300",
        "--early-stopping",
        "5",
        "--clip-grad-norm",
        "1",
        "--out",
        d,
        "--json",
    ]));
    for name in [
        "config.json",
        "run.json",
        "metrics.csv",
        "model.safetensors",
        "best.safetensors",
        "last.safetensors",
        "resume.safetensors",
        "learning_curves.png",
        "confusion_matrix.png",
        "tensorboard",
    ] {
        assert!(dir.join(name).exists(), "{name} missing: {first}");
    }
    let result = last_json(&first);
    let accuracy = result["accuracy"].as_f64().unwrap();
    // 3 epochs on 180 digits: well above chance.
    assert!(accuracy > 0.5, "{result}");
    assert_eq!(result["train_images"], 180);
    let run: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["test_accuracy"].as_f64(), Some(accuracy));
    assert_eq!(run["splits"]["validation"], "10 % of the training examples, stratified, seed 0 (20 examples)");
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 1 + 3, "{metrics}");

    // The checkpoint alone: eval rebuilds the model from its card and scores the same test
    // images (all 2,000 here, the run scored 300) without naming the model.
    let evaluated =
        last_json(&ok(&ember(&["eval", "--checkpoint", dir.join("model.safetensors").to_str().unwrap(), "--json"])));
    assert_eq!(evaluated["images"], 2000);
    assert!(evaluated["accuracy"].as_f64().unwrap() > 0.5);

    // --resume continues from the saved settings: every epoch is committed, so it trains no
    // further and keeps the same weights and test accuracy.
    let resumed = ok(&ember(&["finetune", "--resume", d, "--json"]));
    assert!(resumed.contains("resuming after epoch 3 of 3"), "{resumed}");
    assert_eq!(last_json(&resumed)["accuracy"].as_f64(), Some(accuracy));
    assert_eq!(std::fs::read_to_string(dir.join("metrics.csv")).unwrap(), metrics);

    let missing = tmp.path().join("nothing");
    assert_one_line_error(
        &ember(&["finetune", "--resume", missing.to_str().unwrap()]),
        &["config.json", "cannot resume"],
    );
}
