//! `EMBER_QUICK=1`: every command as a smoke run of seconds, for the test that runs each command
//! the README and the guide show (`tests/doc_commands.rs`), so the documentation cannot drift
//! from the CLI without CI failing.
//!
//! The cap is deliberately outside the documented flags: a reader copies the commands as they
//! are, and the test runs exactly those lines. Results under it mean nothing, so `ember` says so
//! on stderr every time.

use crate::args::{Command, LimitArgs, VaeCommand};

/// The setting: set and not `0`.
pub const QUICK_ENV: &str = "EMBER_QUICK";

/// Epochs of any phase.
const EPOCHS: usize = 1;
/// Training images (per run, or per task).
const TRAIN_IMAGES: usize = 200;
/// Test images.
const TEST_IMAGES: usize = 100;
/// Model input side for commands that resize images (pretrained models at 224 px are
/// slow in the unoptimised build the tests use).
const SIDE: u32 = 64;

/// Whether `EMBER_QUICK` is on.
pub fn enabled() -> bool {
    std::env::var_os(QUICK_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

fn at_most(v: Option<usize>, cap: usize) -> Option<usize> {
    Some(v.map_or(cap, |v| v.min(cap)))
}

fn cap_limits(limits: &mut LimitArgs) {
    limits.train_limit = at_most(limits.train_limit, TRAIN_IMAGES);
    limits.test_limit = at_most(limits.test_limit, TEST_IMAGES);
}

/// Shortens `command` in place; the line to print says what changed.
pub fn shorten(command: &mut Command) -> String {
    match command {
        Command::Train(a) => {
            let s = &mut a.settings;
            s.epochs = at_most(s.epochs, EPOCHS);
            s.train_limit = at_most(s.train_limit, TRAIN_IMAGES);
            s.test_limit = at_most(s.test_limit, TEST_IMAGES);
            s.size = s.size.map(|side| side.min(SIDE as usize));
        }
        Command::Finetune(a) => {
            a.head_epochs = a.head_epochs.min(EPOCHS);
            a.epochs = a.epochs.min(EPOCHS);
            a.per_class = at_most(a.per_class, 10);
            a.test_limit = at_most(a.test_limit, TEST_IMAGES);
            a.size = Some(a.size.map_or(SIDE, |s| s.min(SIDE)));
        }
        Command::Distill(a) => {
            a.epochs = a.epochs.min(EPOCHS);
            cap_limits(&mut a.limits);
        }
        Command::Ensemble(a) => a.test_limit = at_most(a.test_limit, TEST_IMAGES),
        Command::Continual(a) => {
            a.epochs_per_task = a.epochs_per_task.min(EPOCHS);
            cap_limits(&mut a.limits);
            a.fisher_samples = a.fisher_samples.min(64);
        }
        Command::Vae(VaeCommand::Train(a)) => {
            a.epochs = a.epochs.min(EPOCHS);
            a.train_limit = at_most(a.train_limit, TRAIN_IMAGES);
        }
        Command::Bench(a) => {
            a.warmup = a.warmup.min(1);
            a.batches = a.batches.min(2);
        }
        _ => {}
    }
    format!(
        "{QUICK_ENV} is set: at most {EPOCHS} epoch, {TRAIN_IMAGES} training and {TEST_IMAGES} test images, \
         {SIDE} px inputs where resized; the numbers below are a smoke test, not results"
    )
}
