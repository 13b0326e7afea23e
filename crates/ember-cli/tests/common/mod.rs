//! What the `ember` binary's test files share: running it, reading a successful run's output
//! (its last line is the `--json` result), and asserting a clean one-line error.
// Each test binary includes this module and uses only what it needs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Runs the `ember` binary built for these tests with `args`.
pub fn ember(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ember")).args(args).output().unwrap()
}

/// A fresh temporary directory (removed when dropped) and the path `name` in it, not created:
/// where a command under test writes its run directory or output file.
pub fn path_in_tempdir(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    (dir, path)
}

/// Runs the `ember` binary with `args` then `--out out --json`: a command that writes `out` (a
/// run directory or a file) and prints its result as JSON on its last line.
pub fn ember_into(out: &Path, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--out", out.to_str().unwrap(), "--json"]);
    ember(&all)
}

/// The stdout of a run, after asserting that it succeeded (showing its stderr when not).
#[track_caller]
pub fn ok(out: &Output) -> String {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The last line of `text` (a `--json` run's result) as JSON.
#[track_caller]
pub fn last_json(text: &str) -> Value {
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

/// The `--json` result of a run, after asserting that it succeeded.
#[track_caller]
pub fn ok_json(out: &Output) -> Value {
    last_json(&ok(out))
}

/// Asserts a failure with exit code 2 whose stderr is a single `error: ...` line containing every
/// `needle`.
#[track_caller]
pub fn assert_one_line_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "expected a clean error exit, stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for needle in needles {
        assert!(lines[0].contains(needle), "`{needle}` missing from: {stderr}");
    }
}
