//! `cargo xtask ci`: the checks every submission must pass, cheapest first.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Instant;

use anyhow::Context;

use crate::{cargo, describe, run_checked};

/// Environment variable pointing at the shared assets directory (`../shared` in CI).
pub const SHARED_ENV: &str = "EMBER_SHARED_DIR";
/// Tests whose name contains this need the shared assets.
const SHARED_TEST_MARK: &str = "shared_";

pub fn run() -> anyhow::Result<()> {
    let start = Instant::now();
    crate::tidy::run()?;

    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run_checked(fmt)?;

    let mut clippy = cargo();
    clippy.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    run_checked(clippy)?;

    let shared = std::env::var_os(SHARED_ENV).filter(|p| std::path::Path::new(p).is_dir());
    let skipped = if shared.is_some() { Vec::new() } else { list_shared_tests()? };
    let mut test = cargo();
    test.args(["test", "--workspace", "--"]);
    if shared.is_none() {
        test.args(["--skip", SHARED_TEST_MARK]);
    }
    let totals = run_tests(test)?;

    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings");
    run_checked(doc)?;

    if !skipped.is_empty() {
        eprintln!();
        eprintln!(
            "!!!!! SKIPPED {} tests that need the shared assets ({SHARED_ENV} is not set to a directory): {}",
            skipped.len(),
            skipped.join(", ")
        );
        eprintln!("!!!!! run them with {SHARED_ENV}=/path/to/shared cargo xtask ci (.ci/run sets it)");
    }
    eprintln!("xtask ci: all checks passed in {:.0} s", start.elapsed().as_secs_f64());
    println!(
        "ci: {} passed, {} failed, {} skipped",
        totals.passed,
        totals.failed,
        skipped.len() as u64 + totals.ignored
    );
    Ok(())
}

#[derive(Default)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

/// Runs `cargo test`, streaming its output and adding up its `test result:` lines.
fn run_tests(mut cmd: std::process::Command) -> anyhow::Result<Totals> {
    eprintln!("xtask: $ {}", describe(&cmd));
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().context("no stdout from cargo test")?;
    let mut totals = Totals::default();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(['.', ';']) {
                let mut words = part.split_whitespace();
                if let (Some(n), Some(what)) = (words.next(), words.next()) {
                    let n: u64 = n.parse().unwrap_or(0);
                    match what {
                        "passed" => totals.passed += n,
                        "failed" => totals.failed += n,
                        "ignored" => totals.ignored += n,
                        _ => {}
                    }
                }
            }
        }
    }
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "`{}` failed ({status}): {} tests failed", describe(&cmd), totals.failed);
    Ok(totals)
}

/// Names of the tests that need the shared assets.
fn list_shared_tests() -> anyhow::Result<Vec<String>> {
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--quiet", "--", "--list", SHARED_TEST_MARK]);
    let out = cmd.stderr(Stdio::inherit()).output()?;
    anyhow::ensure!(out.status.success(), "`{}` failed", describe(&cmd));
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .filter(|name| name.contains(SHARED_TEST_MARK))
        .map(|name| name.rsplit("::").next().unwrap_or(name).to_string())
        .collect())
}
