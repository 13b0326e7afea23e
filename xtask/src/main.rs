//! ember's developer tasks, run as `cargo xtask <task>`:
//!
//! - `ci`: format check, clippy with warnings denied, the whole test suite (doc tests
//!   included), `cargo doc` with warnings denied, the guide (as `docs` builds it, markers
//!   allowed), and the tidy checks. Tests that need the large
//!   assets in `../shared` (named `shared_*`) run when `EMBER_SHARED_DIR` points at them and are
//!   otherwise reported as skipped in one loud line.
//! - `bench`: the criterion benchmarks (`cargo bench`), with an explicit thread count.
//! - `docs`: the API docs (`cargo doc`) and the guides in `docs/guide/<lang>/`, checked and rendered
//!   to `target/guide/<lang>/` (`guide.rs`; `--strict` also refuses pending results markers).
//! - `fuzz`: every parser's fuzz target (`ember-fuzz`) for `--minutes N` each (default 1).
//! - `image-folder`: an MNIST-family IDX directory as an `ImageFolder` tree of PNG/JPEG files.
//! - `gpu-build`: ember with `--features cuda` on a machine without a GPU or a CUDA install
//!   (`gpu_build.rs`); `--bundle` stages the binaries `scripts/gpu-check.sh` runs.

mod bench;
mod ci;
mod docs;
mod fuzz;
mod gpu_build;
mod guide;
mod image_folder;
mod module_cycles;
mod tidy;
mod zoo_bench;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::run(),
        Some("bench") => bench::run(&args[1..]),
        Some("docs") => docs::run(&args[1..]),
        Some("tidy") => tidy::run(),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("image-folder") => image_folder::run(&args[1..]),
        Some("gpu-build") => gpu_build::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | bench [criterion args | e2e | zoo [--rounds N]] | docs [--open] [--strict] [--guide-only] | tidy \
                 | fuzz [--minutes N] [--target NAME]... [--seed S] [--release] \
                 | image-folder --idx DIR --out DIR [--per-class N] [--names mnist|fashion-mnist] | gpu-build [--bundle] ...>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The `cargo` that runs this task.
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// The workspace root (the parent of `xtask/`).
fn workspace_root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Runs `cmd`, failing with its command line when it exits non-zero.
fn run_checked(mut cmd: Command) -> anyhow::Result<()> {
    eprintln!("xtask: $ {}", describe(&cmd));
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "`{}` failed ({status})", describe(&cmd));
    Ok(())
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(|s| s.to_string_lossy()).collect::<Vec<_>>().join(" ")
}
