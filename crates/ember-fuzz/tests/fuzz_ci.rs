//! Every fuzz target, in CI: its seeds, its regression inputs and a bounded number of mutations
//! (5,000 by default, `EMBER_FUZZ_ITERS` to change) with a fixed seed, each in a child process
//! running the `ember-fuzz` binary, so an abort or a hang fails one test and names the input.

use std::path::{Path, PathBuf};
use std::process::Command;

use ember_fuzz::alloc::{take_refused, LimitAlloc};

#[global_allocator]
static ALLOC: LimitAlloc = LimitAlloc::new(1 << 30).with_total_limit(2 << 30);

fn iterations() -> String {
    std::env::var("EMBER_FUZZ_ITERS").unwrap_or_else(|_| "5000".into())
}

/// Runs one target in a child process; panics with its output and saved input on failure.
fn fuzz(target: &str) {
    let crash_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes").join(target);
    let _ = std::fs::remove_dir_all(&crash_dir);
    let out = Command::new(env!("CARGO_BIN_EXE_ember-fuzz"))
        .args(["--target", target, "--iters", &iterations(), "--seed", "20260101", "--hang-secs", "10"])
        .arg("--crash-dir")
        .arg(&crash_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stdout}");
    if !out.status.success() {
        panic!(
            "fuzz target `{target}` failed ({}):\n{stdout}{stderr}\ninputs left in {}: {}\n\
             (once fixed, copy each into crates/ember-fuzz/regressions/{target}/)",
            out.status,
            crash_dir.display(),
            left_over(&crash_dir).join(", ")
        );
    }
}

fn left_over(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

macro_rules! fuzz_tests {
    ($($test:ident => $target:literal,)*) => {
        $(
            #[test]
            fn $test() {
                fuzz($target);
            }
        )*

        #[test]
        fn every_target_has_a_test_and_a_seed_corpus() {
            let tested = [$($target),*];
            for t in ember_fuzz::targets::TARGETS {
                assert!(tested.contains(&t.name), "no CI test for fuzz target `{}`", t.name);
                let corpus = ember_fuzz::crate_dir().join("corpus").join(t.name);
                assert!(std::fs::read_dir(&corpus).map(|d| d.count() > 0).unwrap_or(false), "{}: empty", corpus.display());
            }
        }
    };
}

fuzz_tests! {
    fuzz_idx => "idx",
    fuzz_idx_gz => "idx-gz",
    fuzz_cifar => "cifar",
    fuzz_csv => "csv",
    fuzz_image => "image",
    fuzz_safetensors => "safetensors",
    fuzz_pytorch_zip => "pytorch-zip",
    fuzz_pytorch_legacy => "pytorch-legacy",
    fuzz_tensorboard => "tensorboard",
    fuzz_toml => "toml",
}

#[test]
fn limit_allocator_refuses_and_records_an_oversized_request() {
    let _ = take_refused();
    let mut v: Vec<u8> = Vec::new();
    assert!(v.try_reserve_exact(3 << 30).is_err());
    assert_eq!(take_refused(), Some(3 << 30));
    v.try_reserve_exact(1 << 20).unwrap();
    assert_eq!(take_refused(), None);
}
