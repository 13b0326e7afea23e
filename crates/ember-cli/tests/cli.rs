//! `ember` end to end: train and eval on the bundled sample, and every kind of bad input
//! ending in a one-line error that names the file.

mod common;
#[path = "../../ember-io/tests/support/test_env.rs"]
mod test_env;

use test_env::shared_dir;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_one_line_error, ember, ember_into, last_json, ok, ok_json, path_in_tempdir};
use serde_json::Value;

fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ember-data/assets/mnist-sample")
}

/// A data directory with copies of the bundled sample's four files, gunzipped so they can be
/// damaged byte by byte.
fn raw_copy(dir: &Path) {
    use std::io::Read;
    for entry in std::fs::read_dir(sample_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "gz") {
            let mut raw = Vec::new();
            flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap()).read_to_end(&mut raw).unwrap();
            std::fs::write(dir.join(path.file_stem().unwrap()), raw).unwrap();
        }
    }
}

#[test]
fn train_then_eval_agree_on_the_bundled_sample() {
    let (_run, out_dir) = path_in_tempdir("run");
    let out = ember(&["train", "--epochs", "1", "--train-limit", "1500", "--out", out_dir.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("epoch  1/1"), "{stdout}");
    let trained = ok_json(&out);
    let accuracy = trained["accuracy"].as_f64().unwrap();
    // 1,500 digits, one epoch: far above chance (0.1), far from perfect.
    assert!(accuracy > 0.75, "accuracy {accuracy}");
    assert_eq!(trained["test_images"], 2000);
    let run_json: Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["model"], "mnist-cnn");
    // 10 % of the 1,500 training digits are held out for validation (stratified): the test
    // split is never the validation set.
    assert_eq!(run_json["train_images"], 1350);
    assert_eq!(run_json["splits"]["validation"], "10 % of the training examples, stratified, seed 42 (150 examples)");

    // The checkpoint, evaluated on a directory holding only the two test files.
    let test_only = tempfile::tempdir().unwrap();
    for f in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(sample_dir().join(f), test_only.path().join(f)).unwrap();
    }
    let ckpt = out_dir.join("model.safetensors");
    let out = ember(&[
        "eval",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--data-dir",
        test_only.path().to_str().unwrap(),
        "--json",
    ]);
    let evaluated = ok_json(&out);
    assert_eq!(evaluated["accuracy"], trained["accuracy"]);
    let matrix = evaluated["confusion_matrix"].as_array().unwrap();
    assert_eq!(matrix.len(), 10);
    let total: u64 = matrix.iter().flat_map(|r| r.as_array().unwrap()).map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total, 2000);
    assert_eq!(evaluated["per_class"].as_array().unwrap().len(), 10);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("precision") && stdout.contains("confusion matrix"), "{stdout}");
}

#[test]
fn data_parallel_training_on_cpu_replicas_writes_one_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    let args =
        ["train", "--epochs", "2", "--train-limit", "512", "--test-limit", "200", "--optimizer", "sgd", "--out", run_s];
    let stdout = ok(&ember(&[&args[..], &["--devices", "cpu,cpu", "--json"]].concat()));
    assert!(stdout.contains("data parallel on 2 replicas (cpu,cpu), 128 images a step in all"), "{stdout}");
    let report = last_json(&stdout);
    assert_eq!(report["epochs"].as_array().unwrap().len(), 2);
    // One writer: one metrics row per epoch (a header, then epochs 1 and 2), and the weights.
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "{metrics}");
    assert!(run.join("model.safetensors").is_file() && run.join("resume.safetensors").is_file());
    // The same run on one process with the replicas' batches together learns the same: the
    // library's tests hold the two equal step by step in f64; in f32 they agree closely.
    let single = dir.path().join("single");
    let args = ["train", "--epochs", "2", "--train-limit", "512", "--test-limit", "200", "--optimizer", "sgd"];
    let one =
        ok_json(&ember(&[&args[..], &["--batch-size", "128", "--out", single.to_str().unwrap(), "--json"]].concat()));
    let loss = |r: &Value| r["epochs"][1]["train_loss"].as_f64().unwrap();
    assert!((loss(&report) - loss(&one)).abs() < 1e-3 * loss(&one), "{} vs {}", loss(&report), loss(&one));
    // --device and --devices do not go together.
    let out = ember(&["train", "--device", "cpu", "--devices", "cpu,cpu", "--out", run_s]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--devices"));
}

/// Trains on a raw copy of the sample whose `file` `damage` has rewritten, and asserts the
/// one-line error that names every `needle`.
#[track_caller]
fn assert_training_on_damaged_file_fails(file: &str, damage: impl FnOnce(Vec<u8>) -> Vec<u8>, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    raw_copy(dir.path());
    let path = dir.path().join(file);
    std::fs::write(&path, damage(std::fs::read(&path).unwrap())).unwrap();
    let out = ember(&["train", "--data-dir", dir.path().to_str().unwrap(), "--epochs", "1"]);
    assert_one_line_error(&out, needles);
}

#[test]
fn truncated_idx_file_is_a_one_line_error_naming_it() {
    assert_training_on_damaged_file_fails(
        "train-images-idx3-ubyte",
        |bytes| bytes[..bytes.len() - 100].to_vec(),
        &["train-images-idx3-ubyte", "truncated"],
    );
}

#[test]
fn wrong_magic_number_is_a_one_line_error_naming_the_file() {
    let damage = |mut bytes: Vec<u8>| {
        bytes[2] = 0x0d; // 0x0801 -> 0x0d01
        bytes
    };
    assert_training_on_damaged_file_fails("t10k-labels-idx1-ubyte", damage, &["t10k-labels-idx1-ubyte", "magic"]);
}

#[test]
fn image_and_label_counts_that_differ_are_a_one_line_error() {
    let damage = |bytes: Vec<u8>| {
        let mut short = bytes[..8 + 5999].to_vec();
        short[4..8].copy_from_slice(&5999u32.to_be_bytes());
        short
    };
    assert_training_on_damaged_file_fails(
        "train-labels-idx1-ubyte",
        damage,
        &["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "6000 images", "5999 labels"],
    );
}

#[test]
fn checkpoint_that_does_not_fit_the_model_is_a_one_line_error() {
    let (_dir, ckpt) = path_in_tempdir("wrong.safetensors");
    // The classic CNN's tensors, but fc2 with 12 classes instead of 10.
    let dev = candle_core::Device::Cpu;
    let z = |shape: &[usize]| candle_core::Tensor::zeros(shape, candle_core::DType::F32, &dev).unwrap();
    let tensors: std::collections::HashMap<String, candle_core::Tensor> = [
        ("conv1.weight", z(&[32, 1, 3, 3])),
        ("conv1.bias", z(&[32])),
        ("conv2.weight", z(&[64, 32, 3, 3])),
        ("conv2.bias", z(&[64])),
        ("fc1.weight", z(&[128, 1600])),
        ("fc1.bias", z(&[128])),
        ("fc2.weight", z(&[12, 128])),
        ("fc2.bias", z(&[12])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    candle_core::safetensors::save(&tensors, &ckpt).unwrap();
    let out = ember(&["eval", "--checkpoint", ckpt.to_str().unwrap()]);
    assert_one_line_error(&out, &["wrong.safetensors", "fc2.", "[12", "[10"]);

    std::fs::write(&ckpt, b"not a checkpoint").unwrap();
    let out = ember(&["eval", "--checkpoint", ckpt.to_str().unwrap()]);
    assert_one_line_error(&out, &["wrong.safetensors", "safetensors"]);
}

#[test]
fn unknown_dataset_and_missing_directory_are_one_line_errors() {
    let out = ember(&["train", "--dataset", "cifar-11"]);
    assert_one_line_error(&out, &["cifar-11", "mnist-sample"]);
    let dir = tempfile::tempdir().unwrap();
    let out = ember(&["eval", "--checkpoint", dir.path().join("none.safetensors").to_str().unwrap()]);
    assert_one_line_error(&out, &["none.safetensors"]);
}

#[test]
fn data_info_counts_splits_and_classes() {
    let out = ember(&["data", "info", "--json"]);
    let info = ok_json(&out);
    assert_eq!(info["dataset"], "mnist-sample");
    let splits = info["splits"].as_array().unwrap();
    assert_eq!((splits[0]["examples"].as_u64(), splits[1]["examples"].as_u64()), (Some(6000), Some(2000)));
    let per_class: u64 = splits[1]["per_class"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(per_class, 2000);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("total") && stdout.contains("6000"), "{stdout}");
}

#[test]
fn convert_and_inspect_a_pytorch_checkpoint() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ember-io/tests/fixtures");
    let (_dir, out) = path_in_tempdir("converted.safetensors");
    let converted =
        ember(&["convert", fixtures.join("legacy_state_dict.pth").to_str().unwrap(), out.to_str().unwrap(), "--json"]);
    assert_eq!(ok_json(&converted)["tensors"], 9);
    let inspected = ember(&["inspect", out.to_str().unwrap(), "--json"]);
    let info = ok_json(&inspected);
    assert_eq!(info["format"], "Safetensors");
    let names: Vec<&str> = info["tensors"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"fc.weight") && names.contains(&"bn.num_batches_tracked"), "{names:?}");
    // 24 + 24 + 3 + 6 + 5 + 4 + 6 + 3 values, the batch-norm counter excluded.
    assert_eq!(info["parameters"], 75);

    let refused = ember(&["inspect", fixtures.join("malicious_zip.pt").to_str().unwrap()]);
    assert_one_line_error(&refused, &["malicious_zip.pt", "refusing", "system"]);
}

/// The shared assets directory (`EMBER_SHARED_DIR`), or `None` after printing one skip line:
/// plain `cargo test` on a fresh clone passes, and `cargo xtask ci` reports the skip loudly.
#[test]
fn shared_predict_ranks_espresso_first_for_the_coffee_photo() {
    let Some(shared) = shared_dir() else { return };
    let weights = shared.join("weights/efficientnet-lite0/efficientnet-lite0-57934424.pth");
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["predict", "--model", "efficientnet-lite0", "--weights", weights.to_str().unwrap(), "--json"])
        .arg(shared.join("images/coffee.png"))
        .env("EMBER_LABELS", shared.join("data/imagenet_classes.txt"))
        .output()
        .unwrap();
    let result = ok_json(&out);
    let top = result["predictions"][0]["top"].as_array().unwrap();
    let labels: Vec<&str> = top.iter().map(|t| t["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["espresso", "cup", "consomme", "chocolate sauce, chocolate syrup", "coffee mug"]);
    assert!(top[0]["probability"].as_f64().unwrap() > 0.5);
}

#[test]
fn predict_without_weights_file_is_a_one_line_error() {
    let out = ember(&["predict", "--model", "mlp", "--weights", "/nonexistent/w.safetensors", "x.png"]);
    assert_one_line_error(&out, &["/nonexistent/w.safetensors"]);
}

fn train_mlp(dir: &Path, seed: &str) -> PathBuf {
    let out_dir = dir.join(format!("mlp-{seed}"));
    let out = ember(&[
        "train",
        "--model",
        "mlp",
        "--epochs",
        "3",
        "--train-limit",
        "600",
        "--test-limit",
        "200",
        "--seed",
        seed,
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out_dir.join("model.safetensors")
}

#[test]
fn finetune_lora_and_scratch_report_accuracy_and_trainable_share() {
    let dir = tempfile::tempdir().unwrap();
    let weights = train_mlp(dir.path(), "1");
    let lora_dir = dir.path().join("lora");
    let common = [
        "--model",
        "mlp",
        "--dataset",
        "mnist-sample",
        "--per-class",
        "10",
        "--head-epochs",
        "2",
        "--epochs",
        "1",
        "--test-limit",
        "300",
        "--json",
    ];
    let mut args = vec![
        "finetune",
        "--mode",
        "lora",
        "--weights",
        weights.to_str().unwrap(),
        "--lora-targets",
        "fc1,fc2",
        "--lora-rank",
        "2",
    ];
    args.extend(common);
    args.extend(["--out", lora_dir.to_str().unwrap()]);
    let out = ember(&args);
    let lora = ok_json(&out);
    assert_eq!(lora["mode"], "lora");
    // 10 per class, of which 10 % (one per class) validate.
    assert_eq!((lora["train_images"].as_u64(), lora["test_images"].as_u64()), (Some(90), Some(300)));
    // mlp: fc1 (256, 784), fc2 (128, 256) at rank 2 plus the 1,290 head parameters.
    assert_eq!(lora["trainable_parameters"], 2 * (784 + 256) + 2 * (256 + 128) + 1290);
    assert!(lora["accuracy"].as_f64().unwrap() > 0.5, "{lora}");
    assert!(lora_dir.join("adapter.safetensors").exists());

    let scratch_dir = dir.path().join("scratch");
    let mut args = vec!["finetune", "--mode", "scratch"];
    args.extend(common);
    args.extend(["--out", scratch_dir.to_str().unwrap()]);
    let out = ember(&args);
    assert_eq!(ok_json(&out)["trainable_fraction"], 1.0);
    assert!(scratch_dir.join("model.safetensors").exists());

    let out = ember(&["finetune", "--mode", "probe", "--model", "mlp", "--dataset", "mnist-sample"]);
    assert_one_line_error(&out, &["--weights"]);
}

#[test]
fn ensemble_and_distill_report_members_and_student() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (train_mlp(dir.path(), "1"), train_mlp(dir.path(), "2"));
    let members = [a.to_str().unwrap(), b.to_str().unwrap()];
    let out = ember(&[&["ensemble"], &members[..], &["--combine", "mean", "--test-limit", "400", "--json"]].concat());
    let result = ok_json(&out);
    assert_eq!(result["members"].as_array().unwrap().len(), 2);
    assert_eq!(result["test_images"], 400);
    let best = result["best_member_accuracy"].as_f64().unwrap();
    let accuracies: Vec<f64> =
        result["members"].as_array().unwrap().iter().map(|m| m["accuracy"].as_f64().unwrap()).collect();
    assert_eq!(best, accuracies.iter().cloned().fold(0.0, f64::max));
    assert!(result["accuracy"].as_f64().unwrap() > 0.6);

    let out = ember(&[&["ensemble"], &members[..], &["--combine", "weighted", "--weights", "1"]].concat());
    assert_one_line_error(&out, &["1 weights", "2 members"]);

    let student_dir = dir.path().join("student");
    let settings =
        ["--student", "mlp", "--epochs", "3", "--batch-size", "25", "--train-limit", "500", "--test-limit", "300"];
    let out = ember_into(&student_dir, &[&["distill", "--teachers"], &members[..], &settings[..]].concat());
    let student = ok_json(&out);
    assert_eq!((student["alpha"].as_f64(), student["temperature"].as_f64()), (Some(0.9), Some(4.0)));
    assert!(student["accuracy"].as_f64().unwrap() > 0.5, "{student}");
    assert!(student_dir.join("model.safetensors").exists());
}
