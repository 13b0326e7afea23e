//! `cargo xtask tidy`: structural rules that keep the workspace honest.
//!
//! - every `.rs` file starts with a `//!` doc comment saying what it is for;
//! - dependencies point one way (see `docs/ARCHITECTURE.md`): no library crate depends on
//!   `ember-cli` (only `ember-fuzz`, a developer tool nothing depends on, uses its config
//!   parser), and each crate depends on no ember crate outside its allowed set;
//! - no crate's modules depend on each other in a circle ([`crate::module_cycles`]).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::workspace_root;

/// Every library crate: what the CLI uses and the umbrella crate re-exports.
const LIBRARIES: &[&str] = &[
    "ember-kernels",
    "ember-layers",
    "ember-optim",
    "ember-augment",
    "ember-data",
    "ember-zoo",
    "ember-finetune",
    "ember-train",
    "ember-io",
];

/// For each crate, the ember crates it may depend on (normal dependencies).
const ALLOWED: &[(&str, &[&str])] = &[
    ("ember-derive", &[]),
    ("ember-kernels", &[]),
    ("ember-layers", &["ember-kernels", "ember-derive"]),
    ("ember-io", &[]),
    ("ember-optim", &["ember-kernels", "ember-io"]),
    ("ember-augment", &[]),
    ("ember-data", &["ember-augment", "ember-io"]),
    ("ember-zoo", &["ember-kernels", "ember-layers"]),
    (
        "ember-finetune",
        &[
            "ember-kernels",
            "ember-layers",
            "ember-zoo",
            "ember-optim",
            "ember-data",
            "ember-train",
            "ember-augment",
            "ember-io",
        ],
    ),
    ("ember-train", &["ember-kernels", "ember-layers", "ember-optim", "ember-data", "ember-augment", "ember-io"]),
    ("ember-cli", LIBRARIES),
    ("ember-fuzz", &["ember-data", "ember-train", "ember-finetune", "ember-cli", "ember-io"]),
    // The umbrella crate re-exports every library, never the CLI or the fuzzer.
    ("ember", LIBRARIES),
];

pub fn run() -> anyhow::Result<()> {
    let root = workspace_root();
    let mut problems = Vec::new();
    for file in rust_files(&root.join("crates"))?.into_iter().chain(rust_files(&root.join("xtask"))?) {
        let text = std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
        if !text.starts_with("//!") {
            problems.push(format!("{}: does not start with a `//!` doc comment", file.display()));
        }
    }
    for (krate, allowed) in ALLOWED {
        let manifest = root.join("crates").join(krate).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).with_context(|| manifest.display().to_string())?;
        for dep in normal_ember_dependencies(&text) {
            if !allowed.contains(&dep.as_str()) {
                problems.push(format!("{}: `{krate}` must not depend on `{dep}`", manifest.display()));
            }
        }
    }
    let mut crate_dirs: Vec<PathBuf> =
        std::fs::read_dir(root.join("crates"))?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    crate_dirs.push(root.join("xtask"));
    crate_dirs.sort();
    for dir in crate_dirs {
        let manifest = dir.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).with_context(|| manifest.display().to_string())?;
        if !inherits_workspace_lints(&text) {
            problems.push(format!("{}: lacks `[lints] workspace = true` (one lint policy)", manifest.display()));
        }
        if dir.starts_with(root.join("crates")) && !dir.join("README.md").is_file() {
            problems.push(format!("{}: has no README.md", dir.display()));
        }
        for cycle in crate::module_cycles::cycles(&dir.join("src"))? {
            problems.push(format!(
                "{}: modules depend on each other in a circle: {}",
                dir.display(),
                cycle.join(" -> ")
            ));
        }
    }
    problems.extend(shell_script_problems(&root.join("scripts"))?);
    if problems.is_empty() {
        eprintln!("xtask tidy: ok");
        Ok(())
    } else {
        anyhow::bail!("tidy found {} problem(s):\n  {}", problems.len(), problems.join("\n  "))
    }
}

/// The shell scripts in `dir` that bash cannot parse (`bash -n`), or that are not executable:
/// `scripts/gpu-check.sh` runs where CI never does (on a lent GPU), so CI at least reads it.
fn shell_script_problems(dir: &Path) -> anyhow::Result<Vec<String>> {
    use std::os::unix::fs::PermissionsExt;
    let mut problems = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(problems) };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "sh") {
            continue;
        }
        let mode = std::fs::metadata(&path).with_context(|| path.display().to_string())?.permissions().mode();
        if mode & 0o111 == 0 {
            problems.push(format!("{}: is not executable", path.display()));
        }
        let out = std::process::Command::new("bash")
            .arg("-n")
            .arg(&path)
            .output()
            .with_context(|| format!("running bash -n {}", path.display()))?;
        if !out.status.success() {
            problems.push(format!(
                "{}: bash cannot parse it: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(problems)
}

/// Whether a manifest's `[lints]` table is exactly `workspace = true`.
fn inherits_workspace_lints(manifest: &str) -> bool {
    let mut lines = manifest.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    lines.by_ref().any(|l| l == "[lints]") && lines.next() == Some("workspace = true")
}

/// Names of `ember-*` crates in the `[dependencies]` table of a manifest.
fn normal_ember_dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut deps = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && line.starts_with("ember-") {
            if let Some(name) = line.split(['=', '.', ' ']).next() {
                deps.push(name.to_string());
            }
        }
    }
    deps
}

fn rust_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| d.display().to_string())? {
            let path = entry?.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lints_must_come_from_the_workspace() {
        assert!(inherits_workspace_lints("[package]\nname = \"x\"\n\n[lints]\nworkspace = true\n"));
        assert!(!inherits_workspace_lints("[package]\nname = \"x\"\n"));
        assert!(!inherits_workspace_lints("[lints.clippy]\nunwrap_used = \"warn\"\n"));
        assert!(!inherits_workspace_lints("[lints]\nworkspace = false\n"));
    }

    #[test]
    fn only_the_dependencies_table_counts() {
        let manifest = "[dependencies]\nember-data.workspace = true\nember-zoo = { path = \"x\" }\n[dev-dependencies]\nember-cli.workspace = true\n";
        assert_eq!(normal_ember_dependencies(manifest), vec!["ember-data", "ember-zoo"]);
    }
}
