//! `ember train` as a process: kill and resume, kill during checkpoint writes, run-directory
//! contents, settings from flags and TOML.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ember, ember_into, ok_json, path_in_tempdir};
use serde_json::Value;

fn tensors(path: &Path) -> Vec<(String, Vec<u32>)> {
    let mut v: Vec<_> = candle_core::safetensors::load(path, &candle_core::Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()))
        .collect();
    v.sort();
    v
}

const SMALL: &[&str] = &["--train-limit", "384", "--epochs", "4", "--batch-size", "32"];

fn completed_epochs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("metrics.csv")).map(|t| t.lines().count().saturating_sub(1)).unwrap_or(0)
}

#[test]
fn run_killed_after_epoch_two_resumes_to_the_same_weights_and_metrics() {
    let (root, straight) = path_in_tempdir("straight");
    let mut args = vec!["train", "--json", "--out", straight.to_str().unwrap()];
    args.extend_from_slice(SMALL);
    let reference = ok_json(&ember(&args));

    let killed = root.path().join("killed");
    let mut args = vec!["train", "--out", killed.to_str().unwrap()];
    args.extend_from_slice(SMALL);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while completed_epochs(&killed) < 2 {
        assert!(Instant::now() < deadline, "the run never finished epoch 2");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(completed_epochs(&killed) < 4, "killed too late to test anything");

    let resumed = ok_json(&ember(&["train", "--json", "--resume", killed.to_str().unwrap()]));
    assert_eq!(resumed["epochs"].as_array().unwrap().len(), 4);
    for key in ["accuracy", "test_loss"] {
        assert_eq!(resumed[key], reference[key], "{key}");
    }
    assert_eq!(resumed["epochs"][3]["val_loss"], reference["epochs"][3]["val_loss"]);
    assert_eq!(tensors(&killed.join("model.safetensors")), tensors(&straight.join("model.safetensors")));
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[test]
fn killing_the_process_never_leaves_a_corrupt_checkpoint() {
    let (_root, dir) = path_in_tempdir("run");
    // Tiny epochs (64 train, 64 validation images): the end-of-epoch writes (last, best, CSV,
    // plots, TensorBoard, resume state) come every fraction of a second.
    let args = [
        "train",
        "--out",
        dir.to_str().unwrap(),
        "--train-limit",
        "128",
        "--val-split",
        "0.5",
        "--epochs",
        "10000",
        "--batch-size",
        "64",
    ];
    let names = ["last.safetensors", "best.safetensors", "resume.safetensors"];
    // Kills land at different moments after a run's first checkpoint write begins to show, so
    // across runs they hit the middle of the writes as well as the gaps between them.
    for (kill, delay_ms) in
        [None, Some(0u64), Some(15), Some(40), Some(90), Some(180), Some(350), Some(700)].into_iter().enumerate()
    {
        let before = modified(&dir.join("last.safetensors"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_ember"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            assert!(Instant::now() < deadline, "run {kill} never wrote a checkpoint");
            assert!(child.try_wait().unwrap().is_none(), "the run ended early");
            let written = match delay_ms {
                // The first run goes until every kind of file exists.
                None => names.iter().all(|n| dir.join(n).exists()),
                Some(_) => modified(&dir.join("last.safetensors")) != before,
            };
            if written {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(delay_ms.unwrap_or(0)));
        child.kill().unwrap();
        child.wait().unwrap();
        for name in names {
            // Once written, a file must never disappear and must always load.
            let path = dir.join(name);
            candle_core::safetensors::load(&path, &candle_core::Device::Cpu)
                .unwrap_or_else(|e| panic!("{name} unreadable after kill {kill}: {e}"));
        }
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        // A killed writer may leave its temporary file behind; it never replaces a good file.
        assert!(leftovers.iter().all(|n| n.starts_with('.')), "{leftovers:?}");
    }
    // The last good checkpoint evaluates.
    let out = ember(&["eval", "--checkpoint", dir.join("last.safetensors").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn run_directory_holds_weights_logs_plots_and_settings() {
    let (root, dir) = path_in_tempdir("run");
    let toml = root.path().join("run.toml");
    std::fs::write(
        &toml,
        "epochs = 2\ntrain_limit = 256\noptimizer = \"adamw\"\nscheduler = \"cosine\"\nval_split = 0.25\n",
    )
    .unwrap();
    // The flag wins over the file.
    let out = ember_into(&dir, &["train", "--config", toml.to_str().unwrap(), "--batch-size", "16"]);
    let result = ok_json(&out);
    assert_eq!(result["epochs"].as_array().unwrap().len(), 2);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The header names where each split comes from: 25 % of the first 256 training digits,
    // stratified, validate; the 2,000 test digits are scored once, at the end.
    assert!(stdout.contains("first 256, less the validation examples (191 left)"), "{stdout}");
    assert!(
        stdout.contains("validation: 25 % of the training examples, stratified, seed 42 (65 examples)"),
        "{stdout}"
    );
    assert!(stdout.contains("test:       mnist-sample test split (2000 examples)"), "{stdout}");
    let config: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        (config["optimizer"].as_str(), config["scheduler"].as_str(), config["batch_size"].as_u64()),
        (Some("adamw"), Some("cosine"), Some(16))
    );
    assert_eq!(config["weight_decay"], 0.01);
    for f in [
        "model.safetensors",
        "best.safetensors",
        "last.safetensors",
        "resume.safetensors",
        "metrics.csv",
        "run.json",
        "learning_curves.png",
        "confusion_matrix.png",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let curves = image::open(dir.join("learning_curves.png")).unwrap().to_rgb8();
    assert!(curves.pixels().any(|p| p.0 == [0, 0, 255]), "train curve missing");
    let events: Vec<_> = std::fs::read_dir(dir.join("tensorboard")).unwrap().collect();
    assert_eq!(events.len(), 1);

    let bad = root.path().join("bad.toml");
    std::fs::write(&bad, "epochs = 2\nlearning_rate = 0.1\n").unwrap();
    let out = ember(&["train", "--config", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("learning_rate"), "{err}");
}

/// One epoch of the MLP on 128 images, tested on 100: a fraction of a second, even unoptimized.
fn tiny<'a>(out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train", "--out", out.to_str().unwrap(), "--model", "mlp", "--train-limit", "128"];
    args.extend_from_slice(&["--test-limit", "100", "--epochs", "1", "--batch-size", "64"]);
    args.extend_from_slice(extra);
    args
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Every file below `dir` with its bytes and modification time.
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>, Option<std::time::SystemTime>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.push((path.clone(), std::fs::read(&path).unwrap(), modified(&path)));
        }
    }
    files.sort();
    files
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

fn event_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default()
}

#[test]
fn resuming_a_copied_run_continues_the_copy_and_never_touches_the_original() {
    let (root, original) = path_in_tempdir("original");
    ok(ember(&tiny(&original, &["--scheduler", "constant"])));
    let copy = root.path().join("copy");
    copy_dir(&original, &copy);
    let before = snapshot(&original);

    // A constant-schedule run may be extended: the copy trains a second epoch.
    let out = ok(ember(&["train", "--resume", copy.to_str().unwrap(), "--epochs", "2"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("after epoch 1 of 2"), "{stdout}");
    assert_eq!(snapshot(&original), before, "the original run was written to");
    assert_eq!(std::fs::read_to_string(copy.join("metrics.csv")).unwrap().lines().count(), 3);
    let config: Value = serde_json::from_str(&std::fs::read_to_string(copy.join("config.json")).unwrap()).unwrap();
    assert_eq!((config["out"].as_str(), config["epochs"].as_u64()), (copy.to_str(), Some(2)));
    let events = event_files(&copy.join("tensorboard"));
    assert_eq!(events.len(), 1, "{events:?}");
    let epochs: Vec<u64> = ember_train::tensorboard::read_events(&events[0])
        .unwrap()
        .into_iter()
        .filter(|e| e.scalars.iter().any(|(t, _)| t == "epoch/train_loss"))
        .map(|e| e.step)
        .collect();
    assert_eq!(epochs, [1, 2]);
}

#[test]
fn resuming_a_moved_run_continues_where_it_is_now() {
    let root = tempfile::tempdir().unwrap();
    let (old, new) = (root.path().join("old"), root.path().join("new"));
    ok(ember(&tiny(&old, &[])));
    std::fs::rename(&old, &new).unwrap();
    std::fs::remove_file(new.join("run.json")).unwrap();
    ok(ember(&["train", "--resume", new.to_str().unwrap()]));
    assert!(!old.exists(), "the old run directory was recreated");
    let info: Value = serde_json::from_str(&std::fs::read_to_string(new.join("run.json")).unwrap()).unwrap();
    assert_eq!((info["out"].as_str(), info["epochs_run"].as_u64()), (new.to_str(), Some(1)));
}

#[test]
fn resume_refuses_flags_that_conflict_with_the_saved_run() {
    let (root, dir) = path_in_tempdir("run");
    ok(ember(&tiny(&dir, &[])));
    let resume = dir.to_str().unwrap();
    let other = root.path().join("other");
    for (flags, expected) in [
        (vec!["--lr", "0.1"], "--lr 0.1 (the run has 0.005)"),
        (vec!["--model", "mnist-cnn"], "--model mnist-cnn (the run has mlp)"),
        (vec!["--seed", "7"], "--seed 7 (the run has 42)"),
        (vec!["--out", other.to_str().unwrap()], "(the run has "),
        // One-cycle depends on the run's length, so the run cannot be extended.
        (vec!["--epochs", "3"], "--epochs 3 (the run has 1;"),
    ] {
        let mut args = vec!["train", "--resume", resume];
        args.extend_from_slice(&flags);
        let out = ember(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} accepted");
        assert!(err.contains(expected) && err.contains("config.json"), "{flags:?}: {err}");
    }
    assert!(!other.exists());
    // Flags equal to the saved settings are fine.
    ok(ember(&["train", "--resume", resume, "--seed", "42", "--batch-size", "64", "--out", resume]));
}

#[test]
fn run_killed_before_its_first_commit_restarts_from_epoch_one() {
    let (root, fresh) = path_in_tempdir("fresh");
    ok(ember(&tiny(&fresh, &[])));
    // What a kill during epoch 1 leaves: the settings, TensorBoard events of the uncommitted
    // epoch, and a complete resume file that was never renamed to its final name.
    let killed = root.path().join("killed");
    std::fs::create_dir_all(killed.join("tensorboard")).unwrap();
    std::fs::copy(fresh.join("config.json"), killed.join("config.json")).unwrap();
    std::fs::copy(fresh.join("resume.safetensors"), killed.join(".resume.safetensors.999999.tmp")).unwrap();
    for event in event_files(&fresh.join("tensorboard")) {
        std::fs::copy(&event, killed.join("tensorboard").join(event.file_name().unwrap())).unwrap();
    }
    let before = snapshot(&fresh);

    let out = ok(ember(&["train", "--resume", killed.to_str().unwrap()]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("no epoch was committed") && stdout.contains("starting from epoch 1"), "{stdout}");
    assert!(!killed.join(".resume.safetensors.999999.tmp").exists(), "stale temporary file left");
    assert_eq!(tensors(&killed.join("model.safetensors")), tensors(&fresh.join("model.safetensors")));
    assert_eq!(event_files(&killed.join("tensorboard")).len(), 1, "uncommitted events kept");
    assert_eq!(snapshot(&fresh), before);
}

#[test]
fn tensorboard_failure_is_a_warning_and_the_run_is_committed() {
    let (root, dir) = path_in_tempdir("run");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".last.safetensors.123456.tmp"), b"left by a killed run").unwrap();
    let not_a_dir = root.path().join("tb");
    std::fs::write(&not_a_dir, b"").unwrap();
    let out = ok(ember(&tiny(&dir, &["--logdir", not_a_dir.to_str().unwrap()])));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning: tensorboard failed in epoch 1"), "{stderr}");
    assert!(dir.join("resume.safetensors").is_file() && dir.join("run.json").is_file());
    assert!(!dir.join(".last.safetensors.123456.tmp").exists(), "stale temporary file left");
}
