//! Careless and hostile input to the `ember` binary: every case ends with a non-zero exit and one
//! `error:` line naming the value or file at fault, never with a panic, an abort, a huge
//! allocation, or exit 0 and a meaningless result. Each test is one class of the inputs found by
//! probing the release binary (issue 18).

mod common;

use std::path::Path;
use std::process::Output;

use common::{assert_one_line_error as assert_refused, ember, path_in_tempdir};

/// An MNIST-format directory whose four files are well-formed IDX files holding no examples.
fn empty_idx_dir(dir: &Path) {
    for (name, magic, dims) in [
        ("train-images-idx3-ubyte", 0x0803u32, vec![0u32, 28, 28]),
        ("train-labels-idx1-ubyte", 0x0801, vec![0]),
        ("t10k-images-idx3-ubyte", 0x0803, vec![0, 28, 28]),
        ("t10k-labels-idx1-ubyte", 0x0801, vec![0]),
    ] {
        let mut bytes = magic.to_be_bytes().to_vec();
        for d in dims {
            bytes.extend(d.to_be_bytes());
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn empty_datasets_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    empty_idx_dir(dir.path());
    let data = dir.path().to_str().unwrap();
    let run = dir.path().join("run");
    let out =
        ember(&["train", "--dataset", "mnist", "--data-dir", data, "--epochs", "1", "--out", run.to_str().unwrap()]);
    assert_refused(&out, &["train-images-idx3-ubyte", "no examples"]);
    assert!(!run.join("model.safetensors").exists());
}

#[test]
fn limits_and_splits_that_leave_no_data_are_refused() {
    let (_run, out_dir) = path_in_tempdir("run");
    let out = out_dir.to_str().unwrap();
    assert_refused(&ember(&["train", "--train-limit", "0", "--out", out]), &["--train-limit"]);
    assert_refused(&ember(&["train", "--test-limit", "0", "--out", out]), &["--test-limit"]);
    // 200 images per class with 99.9 % to validation: no class keeps a training image.
    let out_split = ember(&["train", "--train-limit", "2000", "--val-split", "0.999", "--epochs", "1", "--out", out]);
    assert_refused(&out_split, &["0.999", "none to train on"]);
    assert!(!out_dir.join("model.safetensors").exists());
    assert_refused(&ember(&["train", "--batch-size", "0", "--out", out]), &["--batch-size"]);
    assert_flag_refused(&ember(&["finetune", "--per-class", "0"]), "--per-class");
}

/// Asserts that the argument parser refused `flag`'s value (clap's own message, exit 2).
#[track_caller]
fn assert_flag_refused(out: &Output, flag: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "expected a refusal, stderr: {stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: invalid value") && first.contains(flag), "{stderr}");
}

#[test]
fn flags_whose_values_cannot_work_are_refused() {
    // Checked by the run's configuration (flags and TOML files alike).
    assert_refused(&ember(&["train", "--clip-grad-norm=-1"]), &["--clip-grad-norm", "-1"]);
    assert_refused(&ember(&["train", "--clip-grad-norm", "0"]), &["--clip-grad-norm"]);
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "clip_grad_norm = -1.0\n").unwrap();
    assert_refused(&ember(&["train", "--config", config.path().to_str().unwrap()]), &["--clip-grad-norm", "-1"]);
    // Checked by the argument parser, before anything is read.
    assert_flag_refused(&ember(&["finetune", "--mode", "scratch", "--lr-ratio", "0"]), "--lr-ratio");
    assert_flag_refused(&ember(&["distill", "--teachers", "t.safetensors", "--temperature", "0"]), "--temperature");
    assert_flag_refused(&ember(&["eval", "--checkpoint", "m.safetensors", "--batch-size", "0"]), "--batch-size");
    assert_flag_refused(&ember(&["finetune", "--batch-size", "0"]), "--batch-size");
    assert_flag_refused(&ember(&["vae", "sample", "--grid", "g.png", "--count", "0"]), "--count");
    assert_flag_refused(&ember(&["predict", "--weights", "w.safetensors", "--top", "0", "i.png"]), "--top");
    assert_flag_refused(&ember(&["finetune", "--lora-dropout", "1"]), "--lora-dropout");
}

#[test]
fn a_diverging_run_stops_with_the_cause_and_saves_no_checkpoint() {
    let (_run, out_dir) = path_in_tempdir("run");
    let out = ember(&[
        "train",
        "--lr",
        "1e38",
        "--scheduler",
        "constant",
        "--epochs",
        "2",
        "--train-limit",
        "300",
        "--test-limit",
        "100",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_refused(&out, &["diverged", "epoch 1", "learning rate"]);
    for name in ["model.safetensors", "best.safetensors", "last.safetensors", "resume.safetensors"] {
        assert!(!out_dir.join(name).exists(), "{name} was written by a diverged run");
    }
}

#[test]
fn sizes_beyond_the_limits_are_refused_before_allocating() {
    assert_refused(&ember(&["zoo", "show", "resnet18", "--input", "3x100000x100000"]), &["3x100000x100000"]);
    assert_refused(&ember(&["zoo", "show", "resnet18", "--input", "3x3000x3000"]), &["summary", "limit"]);
    assert_refused(&ember(&["zoo", "show", "mlp", "--classes", "100000000"]), &["100000000", "limit"]);
    for flag in ["--crop", "--resize"] {
        let out = ember(&["predict", "--weights", "none.safetensors", flag, "100000", "img.png"]);
        assert_refused(&out, &["100000"]);
    }
}

#[test]
fn checkpoint_errors_say_what_the_file_is_and_name_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert_refused(&ember(&["eval", "--checkpoint", d]), &["is a directory"]);
    let pth = dir.path().join("model.pth");
    std::fs::write(&pth, b"PK\x03\x04 torch.save's zip").unwrap();
    assert_refused(&ember(&["eval", "--checkpoint", pth.to_str().unwrap()]), &["PyTorch checkpoint", "ember convert"]);
    let missing = dir.path().join("missing.safetensors");
    let out = ember(&["eval", "--checkpoint", missing.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("missing.safetensors").count(), 1, "{stderr}");
}

#[test]
fn a_device_this_build_cannot_use_is_one_line_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out =
        ember(&["train", "--epochs", "1", "--train-limit", "64", "--device", "gpu", "--out", run.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("use cpu, cuda, cuda:N or N"), "{out:?}");
    assert!(!out.status.success());
    if candle_core::utils::cuda_is_available() {
        println!("skipped the no-CUDA half: this ember is built with CUDA");
        return;
    }
    for command in [
        vec!["train", "--epochs", "1", "--train-limit", "64", "--device", "cuda", "--out", run.to_str().unwrap()],
        vec!["bench", "--device", "cuda:1", "--batches", "1", "--warmup", "0"],
        vec!["eval", "--checkpoint", "missing.safetensors", "--device", "cuda"],
    ] {
        let out = ember(&command);
        assert_refused(&out, &["--device cuda", "built without CUDA support", "--features cuda"]);
    }
    assert!(!run.join("model.safetensors").exists());
}
