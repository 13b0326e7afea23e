//! `cargo xtask bench zoo`: the models people fine-tune, at their real resolution. Training and
//! inference throughput of ResNet-18, ResNet-50 and EfficientNet-Lite0 at 224 px, batch 16
//! (and Lite0 with a frozen backbone, the first stage of fine-tuning), measured by the release `ember bench` (in its own process, one model at a time) and, when
//! `EMBER_TORCH_PYTHON` names an interpreter with torch, torchvision and timm, by
//! `scripts/peer_zoo_bench.py` with the same settings right after it, so each pair of rows comes
//! from the same minutes of this shared machine. Prints a markdown table (ember's throughput over
//! PyTorch's) and writes it to `target/ember-bench/zoo_table.md`.

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

/// The markdown table: one row per model and stack, ember's speed-up over PyTorch in ember's rows.
fn table(threads: &str, rows: &[(String, Throughput, Option<Throughput>)]) -> String {
    let mut t = format!(
        "224 px, batch {BATCH}, {threads} threads, random images ({WARMUP} warm-up + {TIMED} timed training steps, \
         Adam; inference best of 3 passes)\n\n| model | stack | train img/s | infer img/s | train vs PyTorch | infer vs \
         PyTorch |\n|---|---|---|---|---|---|\n"
    );
    for (model, ember, torch) in rows {
        let ratio = |e: f64, p: Option<f64>| p.map_or("—".to_string(), |p| format!("{:.2}x", e / p));
        t += &format!(
            "| {model} | ember | {:.1} | {:.1} | {} | {} |\n",
            ember.train,
            ember.infer,
            ratio(ember.train, torch.as_ref().map(|p| p.train)),
            ratio(ember.infer, torch.as_ref().map(|p| p.infer))
        );
        if let Some(p) = torch {
            t += &format!("| {model} | PyTorch | {:.1} | {:.1} | | |\n", p.train, p.infer);
        }
    }
    t
}

pub fn run(threads: &str) -> anyhow::Result<()> {
    let mut build = cargo();
    build.args(["build", "--release", "-p", "ember-cli"]);
    run_checked(build)?;
    let root = workspace_root();
    let ember = root.join("target/release/ember");
    let python = std::env::var_os("EMBER_TORCH_PYTHON");
    if python.is_none() {
        eprintln!("xtask bench zoo: EMBER_TORCH_PYTHON not set: PyTorch rows skipped");
    }
    let mut rows = Vec::new();
    for (model, frozen) in MODELS {
        let frozen_flag: &[&str] = if frozen { &["--freeze-backbone"] } else { &[] };
        let mut cmd = Command::new(&ember);
        cmd.args(["bench", "--model", model, "--json", "--threads", threads]);
        cmd.args(["--batch-size", &BATCH.to_string(), "--warmup", &WARMUP.to_string()]);
        cmd.args(["--batches", &TIMED.to_string()]).args(frozen_flag);
        let ours = measure(cmd)?;
        let theirs = match &python {
            Some(python) => {
                let mut cmd = Command::new(python);
                cmd.arg(root.join("scripts/peer_zoo_bench.py")).arg(model).args(["--threads", threads]);
                cmd.args(["--batch-size", &BATCH.to_string(), "--warmup", &WARMUP.to_string()]);
                cmd.args(["--batches", &TIMED.to_string()]).args(frozen_flag);
                Some(measure(cmd)?)
            }
            None => None,
        };
        let name = if frozen { format!("{model}, frozen backbone") } else { model.to_string() };
        rows.push((name, ours, theirs));
    }
    let text = table(threads, &rows);
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

    #[test]
    fn ember_rows_carry_the_ratio_to_pytorch() {
        let rows = [
            (
                "resnet18".to_string(),
                Throughput { train: 30.0, infer: 80.0 },
                Some(Throughput { train: 20.0, infer: 100.0 }),
            ),
            ("resnet50".to_string(), Throughput { train: 5.0, infer: 20.0 }, None),
        ];
        let t = table("2", &rows);
        assert!(t.contains("| resnet18 | ember | 30.0 | 80.0 | 1.50x | 0.80x |"), "{t}");
        assert!(t.contains("| resnet18 | PyTorch | 20.0 | 100.0 | | |"), "{t}");
        assert!(t.contains("| resnet50 | ember | 5.0 | 20.0 | — | — |"), "{t}");
    }
}
