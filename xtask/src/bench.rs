//! `cargo xtask bench`: criterion benchmarks with an explicit thread count, then a table of
//! ember's time against each comparison in the same benchmark group (as ratios, since this
//! machine is shared and noisy) and each loader's throughput against the training's in its
//! group, then the end-to-end classic-CNN table (ember vs plain candle-nn,
//! plus PyTorch and TensorFlow-Keras when `EMBER_TORCH_PYTHON` / `EMBER_TF_PYTHON` name
//! interpreters that have them). `cargo xtask bench e2e` runs only the end-to-end part: the
//! table in `docs/performance.md`. `cargo xtask bench zoo` measures the 224 px models instead
//! (`zoo_bench.rs`).

use std::path::Path;

use crate::{cargo, run_checked, workspace_root};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    if args.first().is_some_and(|a| a == "zoo") {
        let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "2".into());
        let rounds = crate::zoo_bench::rounds_from_args(&args[1..])?;
        return crate::zoo_bench::run(&threads, rounds);
    }
    let end_to_end_only = args.first().is_some_and(|a| a == "e2e");
    let mut cmd = cargo();
    if end_to_end_only {
        cmd.args(["bench", "-p", "ember-train", "--bench", "classic_cnn_end_to_end"]);
    } else {
        cmd.args(["bench", "--workspace", "--bench", "*"]);
        if !args.is_empty() {
            cmd.arg("--").args(args);
        }
    }
    // Benchmarks compare ratios in one run; fix the thread count so runs are comparable.
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "2".into());
    eprintln!("xtask bench: RAYON_NUM_THREADS={threads}");
    cmd.env("RAYON_NUM_THREADS", &threads);
    let out_dir = workspace_root().join("target/ember-bench");
    cmd.env("EMBER_BENCH_OUT", &out_dir);
    run_checked(cmd)?;
    if !end_to_end_only {
        print_ratios(&workspace_root().join("target/criterion"), &threads)?;
    }
    end_to_end_table(&out_dir, &threads)?;
    if end_to_end_only {
        return Ok(());
    }
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
        for line in loader_ratios(&throughputs) {
            println!("{line}");
        }
    }
    println!("\n{threads} threads; ratio = ember time / other time (below 1 means ember is faster)");
    println!("{:<44} {:<12} {:>12} {:>12} {:>8}", "benchmark", "vs", "ember", "other", "ratio");
    for (group, other, e, o) in rows {
        println!("{group:<44} {other:<12} {:>10.3}ms {:>10.3}ms {:>8.3}", e / 1e6, o / 1e6, e / o);
    }
    Ok(())
}

/// Can the data keep up? Within a group, each `loader*` benchmark's throughput over each
/// `*training*` one's (`throughputs`: `("group/bench", per second)`).
fn loader_ratios(throughputs: &[(String, f64)]) -> Vec<String> {
    let mut lines = Vec::new();
    for (loader, l) in throughputs {
        let Some((group, bench)) = loader.split_once('/') else { continue };
        if !bench.starts_with("loader") {
            continue;
        }
        for (training, t) in throughputs {
            if training.strip_prefix(group).is_some_and(|rest| rest.starts_with('/') && rest.contains("training")) {
                lines.push(format!("{group}: loader / training = {:.1}x ({loader} vs {training})", l / t));
            }
        }
    }
    lines
}

/// `EMBER_BENCH_EPOCH=N`: each stack also trains N one-epoch runs (the accuracy column).
fn epoch_runs() -> Option<usize> {
    std::env::var("EMBER_BENCH_EPOCH").ok().and_then(|v| v.parse().ok()).filter(|&n: &usize| n > 0)
}

/// The classic-CNN table: ember and plain candle-nn from the end-to-end bench, then PyTorch and
/// TensorFlow-Keras from `scripts/peer_cnn_bench.py` on the same data, in markdown.
fn end_to_end_table(out_dir: &Path, threads: &str) -> anyhow::Result<()> {
    let Ok(text) = std::fs::read_to_string(out_dir.join("classic_cnn.json")) else {
        eprintln!("xtask bench: no classic_cnn.json: end-to-end table skipped");
        return Ok(());
    };
    let e2e: serde_json::Value = serde_json::from_str(&text)?;
    let mut rows: Vec<(String, f64, f64, Option<f64>)> = Vec::new();
    for stack in ["ember", "candle-nn"] {
        let s = &e2e[stack];
        if let (Some(t), Some(i)) = (s["train_images_per_s"].as_f64(), s["infer_images_per_s"].as_f64()) {
            let name = if stack == "ember" { "ember".to_string() } else { "candle 0.11, plain candle-nn".to_string() };
            rows.push((name, t, i, s["epoch_test_accuracy"].as_f64()));
        }
    }
    let data = std::env::var_os("EMBER_SHARED_DIR").map(|d| Path::new(&d).join("data/fashion-mnist"));
    for (framework, var) in [("torch", "EMBER_TORCH_PYTHON"), ("tf", "EMBER_TF_PYTHON")] {
        let (Some(python), Some(data)) = (std::env::var_os(var), data.as_ref()) else {
            eprintln!("xtask bench: {var} or EMBER_SHARED_DIR not set: {framework} row skipped");
            continue;
        };
        let mut cmd = std::process::Command::new(python);
        cmd.arg(workspace_root().join("scripts/peer_cnn_bench.py")).arg(framework).arg(data);
        cmd.args(["--threads", threads]);
        if let Some(runs) = epoch_runs() {
            cmd.args(["--epoch", "--epoch-runs", &runs.to_string()]);
        }
        let output = cmd.output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let Some(line) = stdout.lines().rev().find(|l| l.starts_with('{')) else {
            eprintln!("xtask bench: {framework} peer failed: {}", String::from_utf8_lossy(&output.stderr));
            continue;
        };
        let r: serde_json::Value = serde_json::from_str(line)?;
        if let (Some(t), Some(i)) = (r["train_images_per_s"].as_f64(), r["infer_images_per_s"].as_f64()) {
            let name = r["stack"].as_str().unwrap_or(framework).to_string();
            rows.push((name, t, i, r["epoch_test_accuracy"].as_f64()));
        }
    }
    let Some(&(_, ember_train, ember_infer, _)) = rows.first() else { return Ok(()) };
    let mut table = format!(
        "classic CNN, {}, batch 64, {threads} threads\n\n| stack | train img/s | infer img/s | ember train speed-up | \
         ember infer speed-up | test acc. after 1 epoch{} |\n|---|---|---|---|---|---|\n",
        e2e["data"].as_str().unwrap_or("?"),
        epoch_runs().filter(|&n| n > 1).map_or(String::new(), |n| format!(" (mean of {n})"))
    );
    for (name, t, i, acc) in &rows {
        let acc = acc.map_or("—".to_string(), |a| format!("{:.2} %", a * 100.0));
        table += &format!("| {name} | {t:.0} | {i:.0} | {:.2}x | {:.2}x | {acc} |\n", ember_train / t, ember_infer / i);
    }
    println!("\n{table}");
    std::fs::write(out_dir.join("classic_cnn_table.md"), &table)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_is_compared_with_training_in_its_own_group_only() {
        let t = |name: &str, per_s: f64| (name.to_string(), per_s);
        let throughputs = [
            t("images_per_s/cnn_training", 2000.0),
            t("images_per_s/loader_flip_crop_2_workers", 8000.0),
            t("folder/loader_jpeg", 400.0),
            t("folder/resnet18_training", 4.0),
            t("conv/ember", 1.0),
        ];
        assert_eq!(
            loader_ratios(&throughputs),
            [
                "images_per_s: loader / training = 4.0x (images_per_s/loader_flip_crop_2_workers vs images_per_s/cnn_training)",
                "folder: loader / training = 100.0x (folder/loader_jpeg vs folder/resnet18_training)",
            ]
        );
    }
}
