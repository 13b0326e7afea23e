//! `cargo xtask bench`: criterion benchmarks with an explicit thread count, then a table of
//! ember's time against each comparison in the same benchmark group (as ratios, since this
//! machine is shared and noisy).

use std::path::Path;

use crate::{cargo, run_checked, workspace_root};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut cmd = cargo();
    cmd.args(["bench", "--workspace", "--bench", "*"]);
    if !args.is_empty() {
        cmd.arg("--").args(args);
    }
    // Benchmarks compare ratios in one run; fix the thread count so runs are comparable.
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "2".into());
    eprintln!("xtask bench: RAYON_NUM_THREADS={threads}");
    cmd.env("RAYON_NUM_THREADS", &threads);
    run_checked(cmd)?;
    print_ratios(&workspace_root().join("target/criterion"), &threads)?;
    // Peer numbers in the same run, when a Python with the reference packages is named.
    match std::env::var_os("EMBER_PYTHON") {
        Some(python) => {
            let script = "crates/ember-augment/benches/torchvision_bench.py";
            eprintln!("xtask bench: {} {script}", python.to_string_lossy());
            let mut cmd = std::process::Command::new(&python);
            cmd.arg(workspace_root().join(script)).current_dir(workspace_root());
            run_checked(cmd)?;
        }
        None => eprintln!("xtask bench: EMBER_PYTHON not set: peer comparisons (torchvision) skipped"),
    }
    Ok(())
}

/// Median time of one benchmark, from criterion's `new/estimates.json`.
fn median_ns(dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join("new/estimates.json")).ok()?;
    // A tiny extraction instead of a JSON dependency: `"median":{..."point_estimate":N`.
    let rest = &text[text.find("\"median\"")?..];
    let rest = &rest[rest.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = rest.find([',', '}'])?;
    rest[..end].trim().parse().ok()
}

/// Elements per iteration, when the benchmark declared a throughput.
fn throughput_elements(dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join("new/benchmark.json")).ok()?;
    let rest = &text[text.find("\"Elements\":")? + "\"Elements\":".len()..];
    let end = rest.find([',', '}'])?;
    rest[..end].trim().parse().ok()
}

fn print_ratios(criterion: &Path, threads: &str) -> anyhow::Result<()> {
    let Ok(groups) = std::fs::read_dir(criterion) else { return Ok(()) };
    let mut throughputs = Vec::new();
    let mut rows = Vec::new();
    for group in groups.flatten() {
        let path = group.path();
        for bench in std::fs::read_dir(&path)?.flatten() {
            if let (Some(n), Some(t)) = (throughput_elements(&bench.path()), median_ns(&bench.path())) {
                let name = format!("{}/{}", group.file_name().to_string_lossy(), bench.file_name().to_string_lossy());
                throughputs.push((name, n / (t / 1e9)));
            }
        }
        let Some(ember) = median_ns(&path.join("ember")) else { continue };
        for other in std::fs::read_dir(&path)?.flatten() {
            let name = other.file_name().to_string_lossy().into_owned();
            if name == "ember" || name == "report" {
                continue;
            }
            if let Some(t) = median_ns(&other.path()) {
                rows.push((group.file_name().to_string_lossy().into_owned(), name, ember, t));
            }
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    throughputs.sort_by(|a, b| a.0.cmp(&b.0));
    if !throughputs.is_empty() {
        println!("\nthroughput ({threads} threads)");
        for (name, per_s) in &throughputs {
            println!("{name:<60} {per_s:>14.0} elements/s");
        }
    }
    println!("\n{threads} threads; ratio = ember time / other time (below 1 means ember is faster)");
    println!("{:<44} {:<12} {:>12} {:>12} {:>8}", "benchmark", "vs", "ember", "other", "ratio");
    for (group, other, e, o) in rows {
        println!("{group:<44} {other:<12} {:>10.3}ms {:>10.3}ms {:>8.3}", e / 1e6, o / 1e6, e / o);
    }
    Ok(())
}
