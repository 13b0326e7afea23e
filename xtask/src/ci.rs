//! `cargo xtask ci`: the checks every submission must pass, cheapest first (the docs step builds
//! the guides too).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Instant;

use anyhow::Context;

use crate::{cargo, describe, run_checked};

/// Tests that need something outside the repository: (name marker, environment variable that
/// provides it, what it is). A test named `shared_*` needs `EMBER_SHARED_DIR` (the large assets in
/// `../shared`, set by `.ci/run`); `python_*` needs `EMBER_PYTHON` (a Python with reference
/// packages such as `tensorboard`).
const GATED: &[(&str, &str, &str)] = &[
    ("shared_", "EMBER_SHARED_DIR", "the shared assets directory"),
    ("python_", "EMBER_PYTHON", "a Python interpreter with the reference packages (tensorboard)"),
];

fn available(env: &str) -> bool {
    match std::env::var_os(env) {
        Some(v) if env == "EMBER_SHARED_DIR" => std::path::Path::new(&v).is_dir(),
        Some(v) => !v.is_empty(),
        None => false,
    }
}

pub fn run() -> anyhow::Result<()> {
    let start = Instant::now();
    crate::tidy::run()?;

    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run_checked(fmt)?;

    let mut clippy = cargo();
    clippy.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    run_checked(clippy)?;

    let missing: Vec<&(&str, &str, &str)> = GATED.iter().filter(|(_, env, _)| !available(env)).collect();
    let mut skipped = Vec::new();
    for (mark, env, what) in &missing {
        skipped.push((*env, *what, list_tests(mark)?));
    }
    let mut test = cargo();
    test.args(["test", "--workspace", "--no-fail-fast", "--"]);
    for (mark, _, _) in &missing {
        test.args(["--skip", mark]);
    }
    let totals = run_tests(test)?;

    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings");
    run_checked(doc)?;
    // Non-strict: pending results markers are allowed while the lead measures them.
    crate::docs::build_guides(false)?;

    let mut n_skipped = 0;
    for (env, what, names) in &skipped {
        if names.is_empty() {
            continue;
        }
        n_skipped += names.len() as u64;
        eprintln!();
        eprintln!("!!!!! SKIPPED {} tests that need {what} ({env} is not set): {}", names.len(), names.join(", "));
        eprintln!("!!!!! run them with {env}=... cargo xtask ci");
    }
    eprintln!("xtask ci: all checks passed in {:.0} s", start.elapsed().as_secs_f64());
    println!("ci: {} passed, {} failed, {} skipped", totals.passed, totals.failed, n_skipped + totals.ignored);
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

/// Names of the tests whose name contains `mark`.
fn list_tests(mark: &str) -> anyhow::Result<Vec<String>> {
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--quiet", "--", "--list", mark]);
    let out = cmd.stderr(Stdio::inherit()).output()?;
    anyhow::ensure!(out.status.success(), "`{}` failed", describe(&cmd));
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .filter(|name| name.contains(mark))
        .map(|name| name.rsplit("::").next().unwrap_or(name).to_string())
        .collect())
}
