//! `cargo xtask bench`: criterion benchmarks with an explicit thread count.

use crate::{cargo, run_checked};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut cmd = cargo();
    cmd.args(["bench", "--workspace"]);
    if !args.is_empty() {
        cmd.arg("--").args(args);
    }
    // Benchmarks compare ratios in one run; fix the thread count so runs are comparable.
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "2".into());
    eprintln!("xtask bench: RAYON_NUM_THREADS={threads}");
    cmd.env("RAYON_NUM_THREADS", threads);
    run_checked(cmd)
}
