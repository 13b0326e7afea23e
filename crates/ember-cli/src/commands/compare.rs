//! `ember compare`: one metric of several runs side by side, as a table and one plot.

use std::path::Path;

use anyhow::Context;
use serde_json::json;

use crate::args::CompareArgs;

/// Metrics whose best value is the smallest (losses, the generalisation gap).
fn lower_is_better(metric: &str) -> bool {
    metric.ends_with("loss") || metric == "gap"
}

/// The test accuracy a run recorded in its `run.json`, if it has one (runs killed before the
/// end, or commands that write none, have not).
fn test_accuracy(run: &Path) -> anyhow::Result<Option<f64>> {
    let path = run.join("run.json");
    if !path.is_file() {
        return Ok(None);
    }
    // run.json is a few kilobytes; anything much larger is not one ember wrote.
    let len = std::fs::metadata(&path).with_context(|| format!("{}", path.display()))?.len();
    anyhow::ensure!(len <= 1 << 20, "{}: {len} bytes is too large for a run summary", path.display());
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not a run summary", path.display()))?;
    Ok(value.get("test_accuracy").and_then(|v| v.as_f64()))
}

/// A run's label in the table and the legend: its directory name, or the whole path where two
/// runs share a name.
fn labels(runs: &[std::path::PathBuf]) -> Vec<String> {
    let short: Vec<String> = runs
        .iter()
        .map(|r| r.file_name().map_or_else(|| r.display().to_string(), |n| n.to_string_lossy().into_owned()))
        .collect();
    short
        .iter()
        .zip(runs)
        .map(|(s, r)| if short.iter().filter(|t| *t == s).count() > 1 { r.display().to_string() } else { s.clone() })
        .collect()
}

pub fn run(args: &CompareArgs) -> anyhow::Result<()> {
    let metric = args.metric.as_str();
    let names = labels(&args.runs);
    let mut curves = Vec::new();
    let mut rows = Vec::new();
    // Wide enough for "final val_accuracy".
    let final_width = 6 + metric.len();
    println!(
        "{:<20} {:>6} {:>final_width$} {:>16} {:>16} {:>9}",
        "run",
        "epochs",
        format!("final {metric}"),
        "best (epoch)",
        "kept (epoch)",
        "test acc"
    );
    for (run, name) in args.runs.iter().zip(&names) {
        let csv = run.join("metrics.csv");
        anyhow::ensure!(csv.is_file(), "{}: no metrics.csv (is {} a run directory?)", csv.display(), run.display());
        let history = ember_train::callback::read_history(&csv)?;
        let points: Vec<(f64, f64)> =
            history.iter().filter_map(|r| r.metric(metric).map(|v| (r.epoch as f64, v))).collect();
        anyhow::ensure!(
            !points.is_empty(),
            "{}: no `{metric}` values ({} epochs; validation metrics and the gap need a validation split)",
            csv.display(),
            history.len()
        );
        // The gap has no "best": a small gap early in training only means the model has not
        // fitted anything yet. Its value at the kept epoch is what the run delivers.
        let best = (metric != "gap").then(|| {
            points
                .iter()
                .copied()
                .reduce(|a, b| if (b.1 < a.1) == lower_is_better(metric) && b.1 != a.1 { b } else { a })
                .unwrap_or(points[0])
        });
        // The epoch a run keeps: the best validation accuracy, the first of equals (as
        // ModelCheckpoint and EarlyStopping choose).
        let kept_epoch = history
            .iter()
            .filter_map(|r| r.val_accuracy.map(|v| (r.epoch, v)))
            .reduce(|a, b| if b.1 > a.1 { b } else { a })
            .map(|(e, _)| e);
        let kept = kept_epoch.and_then(|e| points.iter().find(|p| p.0 as usize == e).copied());
        let last = points[points.len() - 1];
        let test = test_accuracy(run)?;
        let show = |p: Option<(f64, f64)>| p.map_or_else(|| "-".to_string(), |p| format!("{:.4} ({})", p.1, p.0));
        let test_text = test.map_or_else(|| "-".to_string(), |t| format!("{:.2} %", t * 100.0));
        println!(
            "{name:<20} {:>6} {:>final_width$.4} {:>16} {:>16} {test_text:>9}",
            history.len(),
            last.1,
            show(best),
            show(kept)
        );
        rows.push(json!({
            "run": name, "dir": run, "epochs": history.len(), "final": last.1,
            "best": best.map(|b| b.1), "best_epoch": best.map(|b| b.0 as usize),
            "kept": kept.map(|k| k.1), "kept_epoch": kept_epoch, "test_accuracy": test,
        }));
        curves.push((name.clone(), points));
    }
    if let Some(out) = &args.out {
        let (w, h) = (900, 560);
        let rgb = ember_train::plots::comparison_rgb(metric, &curves, w, h)?;
        ember_train::plots::write_png(out, &ember_train::plots::png_bytes(rgb, w, h)?)?;
        println!("plot of {metric} per epoch in {}", out.display());
    }
    if args.report.json {
        println!("{}", json!({ "metric": metric, "runs": rows, "plot": args.out }));
    }
    Ok(())
}
