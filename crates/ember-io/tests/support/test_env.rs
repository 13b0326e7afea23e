//! The optional assets and tools some tests need, found through environment variables: a test
//! whose variable is not set returns early and says so on stderr (CI counts these lines). Shared
//! by several crates' tests (`#[path]`); each uses only what it needs.
#![allow(dead_code)]

use std::path::PathBuf;

/// The shared assets directory (`EMBER_SHARED_DIR`), or `None` after saying the test is skipped.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("EMBER_SHARED_DIR").map(PathBuf::from);
    if dir.is_none() {
        eprintln!("SKIPPED: EMBER_SHARED_DIR is not set (the shared assets directory)");
    }
    dir
}

/// The Python interpreter that `var` names, or `None` after saying the test is skipped;
/// `needs` says what that Python must have.
pub fn python(var: &str, needs: &str) -> Option<String> {
    let python = std::env::var(var).ok();
    if python.is_none() {
        eprintln!("SKIPPED: {var} is not set ({needs})");
    }
    python
}
