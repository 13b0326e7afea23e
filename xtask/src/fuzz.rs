//! `cargo xtask fuzz [--minutes N] [--target NAME]... [--seed S] [--release]`: runs every fuzz
//! target of `ember-fuzz` (or the ones named) for N minutes each (default 1), one process per
//! target, and fails if any finds a panic, an abort, a hang or an allocation over 1 GiB.
//!
//! The default build is the dev profile (dependencies optimised, ember's crates with overflow
//! checks and debug assertions, which catch more); `--release` trades those for speed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::SystemTime;

use anyhow::Context;

use crate::{cargo, describe, workspace_root};

struct Outcome {
    target: String,
    summary: String,
    failure: Option<String>,
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut minutes = "1".to_string();
    let mut seed = None;
    let mut targets = Vec::new();
    let mut release = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--release" => release = true,
            "--minutes" | "--target" | "--seed" => {
                let value = it.next().with_context(|| format!("{flag} needs a value"))?.clone();
                match flag.as_str() {
                    "--minutes" => {
                        value.parse::<f64>().with_context(|| format!("--minutes: `{value}` is not a number"))?;
                        minutes = value;
                    }
                    "--target" => targets.push(value),
                    _ => seed = Some(value),
                }
            }
            _ => anyhow::bail!("unknown argument `{flag}`; usage: cargo xtask fuzz [--minutes N] [--target NAME]... [--seed S] [--release]"),
        }
    }
    let seed = seed.unwrap_or_else(|| {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        now.to_string()
    });
    if targets.is_empty() {
        targets = list_targets(release)?;
    }
    let crash_dir = workspace_root().join("crates/ember-fuzz/crashes");
    let mut outcomes = Vec::new();
    for target in &targets {
        outcomes.push(run_target(target, &minutes, &seed, release, &crash_dir)?);
    }
    eprintln!();
    eprintln!("xtask fuzz: seed {seed}, {minutes} minute(s) per target");
    for o in &outcomes {
        eprintln!("  {:<16} {}", o.target, o.summary);
        if let Some(f) = &o.failure {
            eprintln!("  {:<16} FAILED: {f}", "");
        }
    }
    let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
    anyhow::ensure!(
        failed == 0,
        "{failed} fuzz target(s) failed; the inputs are in {} (once fixed, move each to \
         crates/ember-fuzz/regressions/<target>/)",
        crash_dir.display()
    );
    Ok(())
}

fn fuzz_command(release: bool) -> std::process::Command {
    let mut cmd = cargo();
    cmd.args(["run", "--quiet", "-p", "ember-fuzz", "--bin", "ember-fuzz"]);
    if release {
        cmd.arg("--release");
    }
    cmd.arg("--");
    cmd
}

fn list_targets(release: bool) -> anyhow::Result<Vec<String>> {
    let mut cmd = fuzz_command(release);
    cmd.arg("--list");
    eprintln!("xtask: $ {}", describe(&cmd));
    let out = cmd.stderr(Stdio::inherit()).output()?;
    anyhow::ensure!(out.status.success(), "`{}` failed ({})", describe(&cmd), out.status);
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect())
}

fn run_target(target: &str, minutes: &str, seed: &str, release: bool, crash_dir: &Path) -> anyhow::Result<Outcome> {
    let started = SystemTime::now();
    let mut cmd = fuzz_command(release);
    cmd.args(["--target", target, "--minutes", minutes, "--seed", seed, "--crash-dir"]).arg(crash_dir);
    eprintln!("xtask: $ {}", describe(&cmd));
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().context("no stdout from ember-fuzz")?;
    let mut summary = String::from("(no summary)");
    let mut failures = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix(&format!("ember-fuzz: {target}: ")) {
            if rest.starts_with("FAILURE: ") {
                failures.push(rest.to_string());
            } else if rest.contains("inputs/s") {
                summary = rest.to_string();
            }
        }
    }
    let status = child.wait()?;
    let failure = if status.success() {
        None
    } else if !failures.is_empty() {
        Some(failures.join("; "))
    } else {
        // An abort, a crash or a hang: the input it was running is the file it left behind.
        let left = new_inputs(crash_dir, target, started);
        Some(format!(
            "ember-fuzz exited with {status} (abort, crash or hang); input(s) left: {}",
            if left.is_empty() { "none found".into() } else { left.join(", ") }
        ))
    };
    Ok(Outcome { target: target.to_string(), summary, failure })
}

/// Files `<target>-*.bin` in `dir` modified since `since`.
fn new_inputs(dir: &Path, target: &str, since: SystemTime) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let prefix = format!("{target}-");
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter(|e| e.metadata().and_then(|m| m.modified()).is_ok_and(|m| m >= since))
        .map(|e| e.path().display().to_string())
        .collect()
}
