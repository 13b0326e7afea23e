//! `cargo xtask docs`: build the API documentation and the guides.
//!
//! Flags: `--open` opens the API docs; `--strict` fails on a guide chapter that still holds a
//! `<!-- RESULTS:... -->` marker (for the final release of the guide); `--guide-only` skips
//! `cargo doc` (the guide builds in a second, the API docs in minutes).

use anyhow::Context;

use crate::{cargo, run_checked, workspace_root};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let known = ["--open", "--strict", "--guide-only"];
    if let Some(unknown) = args.iter().find(|a| !known.contains(&a.as_str())) {
        anyhow::bail!("docs: unknown argument `{unknown}` (expected {})", known.join(", "));
    }
    let has = |flag: &str| args.iter().any(|a| a == flag);
    // The guide first: its checks are cheap and its errors name files and lines.
    build_guides(has("--strict"))?;
    if has("--guide-only") {
        return Ok(());
    }
    let mut cmd = cargo();
    cmd.args(["doc", "--workspace", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings");
    if has("--open") {
        cmd.arg("--open");
    }
    run_checked(cmd)?;
    eprintln!("xtask docs: API docs in {}", workspace_root().join("target/doc/ember_train/index.html").display());
    Ok(())
}

/// Checks and renders `docs/guide/<lang>/` to `target/guide/<lang>/`.
pub fn build_guides(strict: bool) -> anyhow::Result<()> {
    let root = workspace_root();
    crate::guide::build(&root.join("docs/guide"), &root.join("target/guide"), strict)
        .context("building the guide (docs/guide)")?;
    eprintln!("xtask docs: guides in {}", root.join("target/guide/<lang>/index.html").display());
    Ok(())
}
