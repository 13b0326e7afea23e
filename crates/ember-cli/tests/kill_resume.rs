//! SIGKILL at random moments of a 3-epoch `ember train`, then `--resume` to the end: after every
//! kill each file under a final name loads, and the finished run equals an uninterrupted one bit
//! for bit (weights, test accuracy, metrics.csv, TensorBoard scalars).
//!
//! `EMBER_KILL_ROUNDS` (default 5) sets the number of rounds, `EMBER_KILL_SEED` (default 18) the
//! seed of their moments and `EMBER_KILL_MODEL` (default `mlp`, about a second a run in a debug
//! build, where `mnist-cnn` takes over a minute) the zoo model:
//! `EMBER_KILL_ROUNDS=20 EMBER_KILL_MODEL=mnist-cnn cargo test --release -p ember-cli --test kill_resume`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const RUN: &[&str] = &["--train-limit", "1000", "--epochs", "3", "--batch-size", "64", "--val-split", "0.1"];

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ember")).args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

fn fresh(dir: &Path, model: &str) -> Child {
    let mut args = vec!["train", "--out", dir.to_str().unwrap(), "--model", model];
    args.extend_from_slice(RUN);
    spawn(&args)
}

fn resume(dir: &Path) -> Child {
    spawn(&["train", "--resume", dir.to_str().unwrap()])
}

fn finish(child: Child) {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Everything a finished run is judged by, minus wall-clock times.
#[derive(Debug, PartialEq)]
struct Outcome {
    model: Vec<(String, Vec<u64>)>,
    best: Vec<(String, Vec<u64>)>,
    test_accuracy: f64,
    metrics: Vec<String>,
    scalars: Vec<(String, u64, u32)>,
}

/// Every tensor's values as bits (as `f64`, which holds each dtype ember saves exactly).
fn tensors(path: &Path) -> Vec<(String, Vec<u64>)> {
    let mut v: Vec<_> = ember_train::checkpoint::read_tensors(path, &candle_core::Device::Cpu)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|(k, t)| {
            let values = t.flatten_all().and_then(|t| t.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>());
            (k, values.unwrap().iter().map(|x| x.to_bits()).collect())
        })
        .collect();
    v.sort();
    v
}

fn outcome(dir: &Path) -> Outcome {
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    // Every column but the last (seconds).
    let metrics = csv.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect();
    let events: Vec<PathBuf> = std::fs::read_dir(dir.join("tensorboard")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    let scalars = ember_train::tensorboard::read_events(&events[0])
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .flat_map(|e| e.scalars.into_iter().map(move |(tag, v)| (tag, e.step, v.to_bits())))
        .collect();
    Outcome {
        model: tensors(&dir.join("model.safetensors")),
        best: tensors(&dir.join("best.safetensors")),
        test_accuracy: info["test_accuracy"].as_f64().unwrap(),
        metrics,
        scalars,
    }
}

/// Every file under a final name loads: JSON parses, safetensors and PNGs decode, metrics.csv
/// holds whole rows for consecutive epochs.
fn check_final_files(dir: &Path, round: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let ctx = format!("round {round}: {name}");
        if name.starts_with('.') || path.is_dir() {
            continue;
        }
        if name.ends_with(".json") {
            serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        } else if name.ends_with(".safetensors") {
            assert!(!tensors(&path).is_empty(), "{ctx}: no tensors");
        } else if name.ends_with(".png") {
            image::open(&path).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        } else if name == "metrics.csv" {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.ends_with('\n'), "{ctx}: partial last line");
            let mut lines = text.lines();
            assert!(lines.next().unwrap().starts_with("epoch,"), "{ctx}: header");
            for (i, line) in lines.enumerate() {
                let fields: Vec<&str> = line.split(',').collect();
                assert_eq!(fields.len(), 7, "{ctx}: {line}");
                assert_eq!(fields[0].parse::<usize>().ok(), Some(i + 1), "{ctx}: {line}");
                assert!(fields[1..].iter().all(|f| f.parse::<f64>().is_ok()), "{ctx}: {line}");
            }
        } else {
            panic!("{ctx}: unexpected file");
        }
    }
}

/// Where a kill landed: epochs committed and whether a write was in progress.
fn phase(dir: &Path) -> String {
    if !dir.join("config.json").is_file() {
        return "before config.json".into();
    }
    let committed = std::fs::read(dir.join("resume.safetensors")).ok().map_or(0, |bytes| {
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let trainer: serde_json::Value = serde_json::from_str(&meta.metadata().as_ref().unwrap()["trainer"]).unwrap();
        trainer["history"].as_array().unwrap().len()
    });
    let writing = std::fs::read_dir(dir).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp"));
    let when = if committed == 3 { "after epoch 3".to_string() } else { format!("in epoch {}", committed + 1) };
    format!("{when}{}", if writing { ", mid-write" } else { "" })
}

/// Kills `child` at `at`, or earlier at the `nth` appearance of a temporary file (a checkpoint
/// write in progress) when `nth` is given. Returns where the kill landed, or `None` when the run
/// ended first.
fn kill_at(mut child: Child, dir: &Path, at: Duration, nth: Option<usize>) -> Option<String> {
    let started = Instant::now();
    let (mut present, mut seen) = (BTreeSet::new(), 0);
    loop {
        if child.try_wait().unwrap().is_some() {
            finish(child);
            return None;
        }
        if let Some(nth) = nth {
            let now: BTreeSet<String> = std::fs::read_dir(dir)
                .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            let now: BTreeSet<String> = now.into_iter().filter(|n| n.ends_with(".tmp")).collect();
            seen += now.difference(&present).count();
            present = now;
            if seen >= nth {
                break;
            }
        }
        if started.elapsed() >= at {
            break;
        }
        // Aiming at a write: poll as fast as possible.
        if nth.is_none() {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    Some(phase(dir))
}

#[test]
fn runs_killed_at_random_moments_resume_to_the_uninterrupted_result() {
    let rounds: usize = std::env::var("EMBER_KILL_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let seed: u64 = std::env::var("EMBER_KILL_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(18);
    let model = std::env::var("EMBER_KILL_MODEL").unwrap_or_else(|_| "mlp".into());
    let root = tempfile::tempdir().unwrap();

    // Training is deterministic given the seed: two uninterrupted runs agree.
    let started = Instant::now();
    let reference = root.path().join("reference");
    finish(fresh(&reference, &model));
    let duration = started.elapsed();
    let again = root.path().join("again");
    finish(fresh(&again, &model));
    let expected = outcome(&reference);
    assert_eq!(outcome(&again), expected, "two uninterrupted runs differ");

    let mut rng = StdRng::seed_from_u64(seed);
    let mut landed = Vec::new();
    for round in 0..rounds {
        let dir = root.path().join(format!("round{round}"));
        // Anywhere in the run, start-up and the final evaluation included; every third round
        // aims at a checkpoint write in progress.
        let nth = (round % 3 == 2).then(|| rng.random_range(1..=12));
        let at = if nth.is_some() { duration * 10 } else { duration.mul_f64(rng.random_range(0.0..1.0)) };
        landed.extend(kill_at(fresh(&dir, &model), &dir, at, nth));
        check_final_files(&dir, round);
        // Every other round kills the resumed process too.
        if round % 2 == 1 && dir.join("config.json").is_file() {
            let at = duration.mul_f64(rng.random_range(0.0..0.8));
            landed.extend(kill_at(resume(&dir), &dir, at, None));
            check_final_files(&dir, round);
        }
        // Killed before config.json was committed, the run never started: run it again.
        finish(if dir.join("config.json").is_file() { resume(&dir) } else { fresh(&dir, &model) });
        assert_eq!(outcome(&dir), expected, "round {round}: resumed run differs from the uninterrupted one");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "round {round}: {leftovers:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let mut phases = std::collections::BTreeMap::new();
    for p in &landed {
        *phases.entry(p.as_str()).or_insert(0) += 1;
    }
    let n = landed.len();
    eprintln!("{n} kills in {rounds} rounds of {model} (seed {seed}), {phases:?}; uninterrupted run {duration:.1?}");
    assert!(landed.len() >= rounds / 2, "only {} of {rounds} kills landed before the run ended", landed.len());
}
