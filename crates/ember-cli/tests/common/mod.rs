//! What the `ember` binary's test files share: running it, and asserting a clean one-line error.
// Each test binary includes this module and uses only what it needs.
#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs the `ember` binary built for these tests with `args`.
pub fn ember(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ember")).args(args).output().unwrap()
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
