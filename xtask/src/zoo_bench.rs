//! `cargo xtask bench zoo`: the models people fine-tune, at their real resolution. Training and
//! inference throughput of ResNet-18, ResNet-50 and EfficientNet-Lite0 at 224 px, batch 16
//! (and Lite0 with a frozen backbone, the first stage of fine-tuning), measured by the release `ember bench` (in its own process, one model at a time) and, when
//! `EMBER_TORCH_PYTHON` names an interpreter with torch, torchvision and timm, by
//! `scripts/peer_zoo_bench.py` with the same settings right after it, so each pair of rows comes
//! from the same minutes of this shared machine. Prints a markdown table (ember's throughput over
//! PyTorch's) and writes it to `target/ember-bench/zoo_table.md`.
//!
//! `--rounds N` (default 1) measures each model N times, ember and PyTorch alternated, and
//! reports each side's median with the range of the N paired ratios: on a shared machine one
//! pair can be off by 10-25 % either way (docs/performance.md), and the median of alternated
//! pairs is the number to read.

use std::process::Command;

use anyhow::Context;

use crate::{cargo, describe, run_checked, workspace_root};

/// The models, as the zoo and the peer script both name them, and whether only the head trains
/// (`--freeze-backbone`: the first stage of fine-tuning, the backbone frozen).
const MODELS: [(&str, bool); 4] =
    [("resnet18", false), ("resnet50", false), ("efficientnet-lite0", false), ("efficientnet-lite0", true)];

/// Settings shared by both sides: batch, warm-up steps, timed steps.
const BATCH: usize = 16;
const WARMUP: usize = 2;
const TIMED: usize = 5;

/// One side's measurement of one model.
#[derive(Debug, Clone, PartialEq)]
struct Throughput {
    train: f64,
    infer: f64,
}

/// Most rounds `--rounds` takes (each is a few minutes per model).
const MAX_ROUNDS: usize = 15;

/// `--rounds N` from the arguments after `zoo` (1 when absent).
pub fn rounds_from_args(args: &[String]) -> anyhow::Result<usize> {
    match args {
        [] => Ok(1),
        [flag, n] if flag == "--rounds" => {
            let rounds: usize = n.parse().with_context(|| format!("--rounds {n:?}: not a whole number"))?;
            anyhow::ensure!((1..=MAX_ROUNDS).contains(&rounds), "--rounds {rounds}: must be 1 to {MAX_ROUNDS}");
            Ok(rounds)
        }
        other => anyhow::bail!("cargo xtask bench zoo: unexpected arguments {other:?} (usage: zoo [--rounds N])"),
    }
}

/// The median of a non-empty list (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Each side's medians over the rounds.
fn medians(runs: &[Throughput]) -> Throughput {
    Throughput {
        train: median(&runs.iter().map(|r| r.train).collect::<Vec<_>>()),
        infer: median(&runs.iter().map(|r| r.infer).collect::<Vec<_>>()),
    }
}

/// The lowest and highest of the paired ratios ember/PyTorch, training and inference.
fn ratio_ranges(ours: &[Throughput], theirs: &[Throughput]) -> ((f64, f64), (f64, f64)) {
    let range = |f: &dyn Fn(&Throughput) -> f64| {
        ours.iter()
            .zip(theirs)
            .map(|(o, t)| f(o) / f(t))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| (lo.min(r), hi.max(r)))
    };
    (range(&|t| t.train), range(&|t| t.infer))
}

/// The last line of `stdout` that is a JSON object, with its two throughputs.
fn parse_last_json(stdout: &str) -> Option<Throughput> {
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{'))?;
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    Some(Throughput { train: v["train_images_per_s"].as_f64()?, infer: v["infer_images_per_s"].as_f64()? })
}

fn measure(mut cmd: Command) -> anyhow::Result<Throughput> {
    eprintln!("xtask: $ {}", describe(&cmd));
    let out = cmd.output().with_context(|| describe(&cmd))?;
    anyhow::ensure!(
        out.status.success(),
        "`{}` failed ({}): {}",
        describe(&cmd),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_last_json(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("`{}` printed no JSON result", describe(&cmd)))
}

/// One model's row data: its name, ember's runs and PyTorch's (none without an interpreter).
type Row = (String, Vec<Throughput>, Option<Vec<Throughput>>);

/// The markdown table: one row per model and stack (medians over the rounds), ember's speed-up
/// over PyTorch in ember's rows, and with several rounds the range of the paired ratios.
fn table(threads: &str, rounds: usize, rows: &[Row]) -> String {
    let how = if rounds > 1 {
        format!(
            "medians of {rounds} rounds, ember and PyTorch alternated; ratios: of the medians, [lowest–highest pair]"
        )
    } else {
        "one round".to_string()
    };
    let mut t = format!(
        "224 px, batch {BATCH}, {threads} threads, random images ({WARMUP} warm-up + {TIMED} timed training steps, \
         Adam; inference: median of 3 passes, no gradient graph; {how})\n\n| model | stack | train img/s | infer img/s | train vs PyTorch \
         | infer vs PyTorch |\n|---|---|---|---|---|---|\n"
    );
    for (model, ember_runs, torch_runs) in rows {
        let ember = medians(ember_runs);
        let torch = torch_runs.as_ref().map(|runs| (medians(runs), ratio_ranges(ember_runs, runs)));
        let ratio = |e: f64, p: Option<(f64, (f64, f64))>| match p {
            None => "—".to_string(),
            Some((p, _)) if rounds == 1 => format!("{:.2}x", e / p),
            Some((p, (lo, hi))) => format!("{:.2}x [{lo:.2}–{hi:.2}]", e / p),
        };
        let (train, infer) = match &torch {
            Some((p, (train_range, infer_range))) => {
                (ratio(ember.train, Some((p.train, *train_range))), ratio(ember.infer, Some((p.infer, *infer_range))))
            }
            None => (ratio(ember.train, None), ratio(ember.infer, None)),
        };
        t += &format!("| {model} | ember | {:.1} | {:.1} | {train} | {infer} |\n", ember.train, ember.infer);
        if let Some((p, _)) = torch {
            t += &format!("| {model} | PyTorch | {:.1} | {:.1} | | |\n", p.train, p.infer);
        }
    }
    t
}

pub fn run(threads: &str, rounds: usize) -> anyhow::Result<()> {
    let mut build = cargo();
    build.args(["build", "--release", "-p", "ember-cli"]);
    run_checked(build)?;
    let root = workspace_root();
    let ember = root.join("target/release/ember");
    let python = std::env::var_os("EMBER_TORCH_PYTHON");
    if python.is_none() {
        eprintln!("xtask bench zoo: EMBER_TORCH_PYTHON not set: PyTorch rows skipped");
    }
    let mut rows: Vec<Row> = Vec::new();
    for (model, frozen) in MODELS {
        let frozen_flag: &[&str] = if frozen { &["--freeze-backbone"] } else { &[] };
        let (mut ours, mut theirs) = (Vec::new(), python.as_ref().map(|_| Vec::new()));
        for _ in 0..rounds {
            let mut cmd = Command::new(&ember);
            cmd.args(["bench", "--model", model, "--json", "--threads", threads]);
            cmd.args(["--batch-size", &BATCH.to_string(), "--warmup", &WARMUP.to_string()]);
            cmd.args(["--batches", &TIMED.to_string()]).args(frozen_flag);
            ours.push(measure(cmd)?);
            if let (Some(python), Some(theirs)) = (&python, theirs.as_mut()) {
                let mut cmd = Command::new(python);
                cmd.arg(root.join("scripts/peer_zoo_bench.py")).arg(model).args(["--threads", threads]);
                cmd.args(["--batch-size", &BATCH.to_string(), "--warmup", &WARMUP.to_string()]);
                cmd.args(["--batches", &TIMED.to_string()]).args(frozen_flag);
                theirs.push(measure(cmd)?);
            }
        }
        let name = if frozen { format!("{model}, frozen backbone") } else { model.to_string() };
        rows.push((name, ours, theirs));
    }
    let text = table(threads, rounds, &rows);
    println!("\n{text}");
    let out = root.join("target/ember-bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("zoo_table.md"), &text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_is_the_last_json_line() {
        let out = "train 6.3 images/s\n{\"train_images_per_s\": 1.0, \"infer_images_per_s\": 2.0}\n\
                   {\"train_images_per_s\": 6.5, \"infer_images_per_s\": 67.0}\n";
        assert_eq!(parse_last_json(out), Some(Throughput { train: 6.5, infer: 67.0 }));
        assert_eq!(parse_last_json("no json here\n"), None);
        assert_eq!(parse_last_json("{\"train_images_per_s\": 1.0}\n"), None);
    }

    fn runs(pairs: &[(f64, f64)]) -> Vec<Throughput> {
        pairs.iter().map(|&(train, infer)| Throughput { train, infer }).collect()
    }

    #[test]
    fn ember_rows_carry_the_ratio_to_pytorch() {
        let rows = [
            ("resnet18".to_string(), runs(&[(30.0, 80.0)]), Some(runs(&[(20.0, 100.0)]))),
            ("resnet50".to_string(), runs(&[(5.0, 20.0)]), None),
        ];
        let t = table("2", 1, &rows);
        assert!(t.contains("| resnet18 | ember | 30.0 | 80.0 | 1.50x | 0.80x |"), "{t}");
        assert!(t.contains("| resnet18 | PyTorch | 20.0 | 100.0 | | |"), "{t}");
        assert!(t.contains("| resnet50 | ember | 5.0 | 20.0 | — | — |"), "{t}");
    }

    #[test]
    fn several_rounds_report_medians_and_the_range_of_paired_ratios() {
        // Ember's runs 10, 12, 11 (median 11); PyTorch's 10, 8, 12 (median 10); pairs 1.0, 1.5,
        // 0.92. Inference: 40, 44, 42 against 40, 40, 40.
        let ours = runs(&[(10.0, 40.0), (12.0, 44.0), (11.0, 42.0)]);
        let theirs = runs(&[(10.0, 40.0), (8.0, 40.0), (12.0, 40.0)]);
        let t = table("2", 3, &[("resnet18".to_string(), ours, Some(theirs))]);
        assert!(t.contains("medians of 3 rounds"), "{t}");
        assert!(t.contains("| resnet18 | ember | 11.0 | 42.0 | 1.10x [0.92–1.50] | 1.05x [1.00–1.10] |"), "{t}");
        assert!(t.contains("| resnet18 | PyTorch | 10.0 | 40.0 | | |"), "{t}");
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn rounds_come_from_the_flag_and_bad_values_are_errors() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(rounds_from_args(&[]).unwrap(), 1);
        assert_eq!(rounds_from_args(&args(&["--rounds", "3"])).unwrap(), 3);
        for bad in [&["--rounds", "0"][..], &["--rounds", "x"], &["--rounds", "99"], &["--round", "3"], &["3"]] {
            let e = rounds_from_args(&args(bad)).unwrap_err().to_string();
            assert!(e.contains("rounds") || e.contains("unexpected"), "{bad:?}: {e}");
        }
    }
}
