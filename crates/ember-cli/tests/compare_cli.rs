//! The guide's optimizer and regularisation experiments as processes: `--momentum`,
//! `--nesterov`, `--dropout`, `--batch-norm`, and `ember compare` over the runs they make.

mod common;

use std::path::Path;
use std::process::Output;

use common::{assert_one_line_error, ember, ember_into, ok_json, path_in_tempdir};
use serde_json::Value;

fn train(out: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["train", "--json", "--train-limit", "300", "--epochs", "2", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    ok_json(&ember(&args))
}

#[test]
fn optimizer_runs_compare_in_one_table_and_one_plot() {
    let (root, gd) = path_in_tempdir("gd");
    let adam = root.path().join("adam");
    let gd_run = train(&gd, &["--optimizer", "sgd", "--momentum", "0", "--scheduler", "constant", "--lr", "0.05"]);
    let config: Value = serde_json::from_str(&std::fs::read_to_string(gd.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["momentum"], 0.0);
    train(&adam, &["--scheduler", "constant"]);

    let png = root.path().join("optimizers.png");
    let out = ember_into(&png, &["compare", gd.to_str().unwrap(), adam.to_str().unwrap(), "--metric", "val_loss"]);
    let json = ok_json(&out);
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[0]["run"].as_str(), runs[1]["run"].as_str()), (Some("gd"), Some("adam")));
    // The table's numbers are the runs' own: the final validation loss from metrics.csv and the
    // test accuracy from run.json.
    let csv = std::fs::read_to_string(gd.join("metrics.csv")).unwrap();
    let last_row: Vec<&str> = csv.lines().last().unwrap().split(',').collect();
    assert_eq!(runs[0]["final"].as_f64().unwrap(), last_row[3].parse::<f64>().unwrap());
    assert_eq!(runs[0]["test_accuracy"], gd_run["accuracy"]);
    assert_eq!(runs[0]["epochs"], 2);
    let best = runs[0]["best"].as_f64().unwrap();
    assert!(best <= runs[0]["final"].as_f64().unwrap(), "a loss's best is its smallest");
    let img = image::open(&png).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (900, 560));

    let gap = ok_json(&ember(&["compare", gd.to_str().unwrap(), "--metric", "gap", "--json"]));
    let train_acc: f64 = last_row[2].parse().unwrap();
    let val_acc: f64 = last_row[4].parse().unwrap();
    assert_eq!(gap["runs"][0]["final"].as_f64().unwrap(), train_acc - val_acc);
    // The gap has no "best"; its value at the kept epoch (best validation accuracy) is shown.
    assert!(gap["runs"][0]["best"].is_null());
    let rows: Vec<Vec<f64>> = csv.lines().skip(1).map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    let kept = rows.iter().fold(&rows[0], |a, b| if b[4] > a[4] { b } else { a });
    assert_eq!(gap["runs"][0]["kept_epoch"].as_u64().unwrap() as f64, kept[0]);
    assert_eq!(gap["runs"][0]["kept"].as_f64().unwrap(), kept[2] - kept[4]);

    let not_a_run = ember(&["compare", root.path().to_str().unwrap()]);
    assert_one_line_error(&not_a_run, &["metrics.csv", "run directory"]);
}

#[test]
fn vgg_small_without_batch_norm_and_dropout_trains_and_evaluates_as_saved() {
    let (_root, plain) = path_in_tempdir("plain");
    let run = train(&plain, &["--model", "vgg-small", "--dropout", "0", "--batch-norm", "false"]);
    let tensors = candle_core::safetensors::load(plain.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    assert!(tensors.contains_key("features.0.bias") && !tensors.contains_key("features.1.running_mean"));
    // The checkpoint's card says "no batch norm", so eval rebuilds the same network and scores
    // the same test images the same way.
    let eval = ok_json(&ember(&["eval", "--checkpoint", plain.join("model.safetensors").to_str().unwrap(), "--json"]));
    assert_eq!(eval["accuracy"], run["accuracy"]);
}

#[test]
fn regularisation_and_momentum_flags_refuse_what_does_not_apply() {
    let out = root_train(&["--momentum", "0.9"]);
    assert_one_line_error(&out, &["--momentum", "--optimizer sgd"]);
    let out = root_train(&["--optimizer", "sgd", "--momentum", "0", "--nesterov", "true"]);
    assert_one_line_error(&out, &["--nesterov true", "momentum"]);
    let out = root_train(&["--dropout", "1.5"]);
    assert_one_line_error(&out, &["--dropout", "1.5"]);
    let out = root_train(&["--dropout", "0.3"]);
    assert_one_line_error(&out, &["mnist-cnn", "dropout", "vgg-small"]);
    let out = root_train(&["--batch-norm", "false", "--model", "lenet5"]);
    assert_one_line_error(&out, &["lenet5", "batch norm"]);
}

fn root_train(extra: &[&str]) -> Output {
    let root = tempfile::tempdir().unwrap();
    let mut args = vec!["train", "--train-limit", "64", "--epochs", "1", "--out", root.path().to_str().unwrap()];
    args.extend_from_slice(extra);
    ember(&args)
}
