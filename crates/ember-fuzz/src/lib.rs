//! A small mutation fuzzer on stable Rust for every parser ember has: IDX (raw and gzip), CIFAR
//! batches, CSV tables, images as the loader decodes them, safetensors checkpoints, PyTorch
//! checkpoints (zip and legacy pickle), TensorBoard event files and `--config` TOML files.
//!
//! # Usage
//!
//! ```text
//! cargo xtask fuzz --minutes 10                  # every target, 10 minutes each
//! cargo xtask fuzz --minutes 1 --target image    # one target
//! cargo run -p ember-fuzz -- --target csv --iters 5000 --seed 7
//! ```
//!
//! Each target ([`targets::TARGETS`]) feeds mutations ([`mutate::Mutator`]) of its seed corpus
//! (`corpus/<target>/`, real files) to ember's own parsing functions. A parser's `Err` is a
//! fine answer; a panic, an abort, a hang (an input running over 10 s) or an allocation over
//! 1 GiB, or over 2 GiB live in all ([`alloc::LimitAlloc`]), is a failure. Every input is written to
//! `crashes/<target>-<hash>.bin` before it runs and deleted after it passes, so even an abort
//! leaves the input behind. Inputs that ever failed are kept in `regressions/<target>/` and run
//! by `cargo test -p ember-fuzz` with 5,000 mutations per target (`EMBER_FUZZ_ITERS`).
//!
//! The library can also be driven directly:
//!
//! ```
//! use std::time::Duration;
//! use ember_fuzz::runner::{run, Budget, Options};
//!
//! let target = ember_fuzz::targets::find("toml").unwrap();
//! let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
//! let crashes = tempfile::tempdir()?;
//! let options = Options {
//!     seed: 1,
//!     budget: Budget::Inputs(200),
//!     corpus: root.join("corpus/toml"),
//!     regressions: vec![root.join("regressions/toml")],
//!     crash_dir: crashes.path().to_path_buf(),
//!     hang_after: Duration::from_secs(10),
//! };
//! let report = run(target, &options, Duration::from_secs(60), &mut |_| {})?;
//! assert!(report.failures.is_empty(), "{:?}", report.failures);
//! assert!(report.inputs >= 200);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod alloc;
pub mod fixup;
pub mod mutate;
pub mod runner;
pub mod targets;

/// The folder holding `corpus/`, `regressions/` and `crashes/` (this crate's).
pub fn crate_dir() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}
