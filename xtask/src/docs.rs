//! `cargo xtask docs`: build the API documentation.

use crate::{cargo, run_checked, workspace_root};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut cmd = cargo();
    cmd.args(["doc", "--workspace", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings");
    if args.iter().any(|a| a == "--open") {
        cmd.arg("--open");
    }
    run_checked(cmd)?;
    eprintln!("xtask docs: API docs in {}", workspace_root().join("target/doc/ember_train/index.html").display());
    eprintln!("xtask docs: guides in {}", workspace_root().join("docs").display());
    Ok(())
}
