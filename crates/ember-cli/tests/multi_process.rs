//! `ember train` as a group of processes (torchrun's variables, loopback TCP): two processes
//! learn what two in-process replicas learn, only rank 0 writes, and a bad variable is one line.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{assert_one_line_error, ember, last_json, ok};
use serde_json::Value;

/// A small run that learns visibly (the loss falls from 2.3 to about 1.7): the MLP with Adam on
/// 512 bundled digits, two epochs.
const ARGS: [&str; 9] = ["train", "--model", "mlp", "--epochs", "2", "--train-limit", "512", "--test-limit", "200"];

/// `ember train` as rank `rank` of `world`, rank 0 at 127.0.0.1:`port`.
fn member(rank: usize, world: usize, port: u16, out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(ARGS)
        .args(["--out", out.to_str().unwrap(), "--json"])
        .env("WORLD_SIZE", world.to_string())
        .env("RANK", rank.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` at most until `deadline`, killing it then (the test fails, not hangs).
fn finish(mut child: Child, deadline: Instant) -> Output {
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("a member hung; stderr: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn epochs(report: &Value) -> Vec<(f64, f64)> {
    report["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["train_loss"].as_f64().unwrap(), e["val_loss"].as_f64().unwrap()))
        .collect()
}

#[test]
fn two_processes_train_as_two_in_process_replicas_and_rank_zero_alone_writes() {
    let dir = tempfile::tempdir().unwrap();
    let threads = dir.path().join("threads");
    let in_process = last_json(&ok(&ember(
        &[&ARGS[..], &["--devices", "cpu,cpu", "--out", threads.to_str().unwrap(), "--json"]].concat(),
    )));

    let processes = dir.path().join("processes");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let deadline = Instant::now() + Duration::from_secs(300);
    // Rank 1 first: it waits for rank 0.
    let one = member(1, 2, port, &processes);
    let zero = member(0, 2, port, &processes);
    let (zero, one) = (finish(zero, deadline), finish(one, deadline));
    let (stdout, stdout_one) = (ok(&zero), ok(&one));
    assert!(stdout.contains("data parallel on 2 processes (tcp, rank 0 on cpu), 128 images a step in all"), "{stdout}");
    assert!(stdout_one.contains("rank 1 of 2 on cpu (tcp)") && stdout_one.contains("rank 1: done"), "{stdout_one}");
    assert!(!stdout_one.contains("epoch"), "rank 1 reports no epochs: {stdout_one}");

    let report = last_json(&stdout);
    let (a, b) = (epochs(&in_process), epochs(&report));
    assert_eq!(a.len(), 2);
    assert_eq!(a.len(), b.len());
    for ((ta, va), (tb, vb)) in a.iter().zip(&b) {
        assert!((ta - tb).abs() <= 1e-4 && (va - vb).abs() <= 1e-4, "in-process {a:?} vs processes {b:?}");
    }
    let accuracy = |r: &Value| r["accuracy"].as_f64().unwrap();
    assert!((accuracy(&report) - accuracy(&in_process)).abs() <= 0.01, "{report} vs {in_process}");

    // One run directory, written once: a header and one metrics row per epoch.
    let mut entries: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    entries.sort();
    assert_eq!(entries, ["processes", "threads"]);
    let metrics = std::fs::read_to_string(processes.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "{metrics}");
    assert!(processes.join("model.safetensors").is_file() && processes.join("run.json").is_file());
}

#[test]
fn a_bad_group_variable_is_one_line_naming_it() {
    let run = |vars: &[(&str, &str)], extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ember"));
        cmd.args(["train", "--epochs", "1"]).args(extra);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let group = [("WORLD_SIZE", "2"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")];
    let out = run(&[&group[..], &[("RANK", "5")]].concat(), &[]);
    assert_one_line_error(&out, &["RANK=\"5\"", "must be below WORLD_SIZE (2)"]);
    let out = run(&[("WORLD_SIZE", "2"), ("RANK", "1")], &[]);
    assert_one_line_error(&out, &["MASTER_ADDR is not set"]);
    let out = run(&[&group[..], &[("RANK", "0")]].concat(), &["--devices", "cpu,cpu"]);
    assert_one_line_error(&out, &["--devices", "WORLD_SIZE is set"]);
}
