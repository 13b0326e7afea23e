//! A per-epoch progress bar on stderr (only when stderr is a terminal).

use std::io::IsTerminal;

use ember_train::{Callback, CallbackContext, Control, EpochReport, StepReport};
use indicatif::{ProgressBar, ProgressStyle};

/// Draws a bar per epoch with the running loss; does nothing when stderr is not a terminal
/// (logs and pipes get the plain per-epoch lines the command prints anyway).
pub struct EpochProgress {
    enabled: bool,
    bar: Option<ProgressBar>,
}

impl EpochProgress {
    pub fn new() -> Self {
        Self { enabled: std::io::stderr().is_terminal(), bar: None }
    }
}

impl Callback for EpochProgress {
    fn name(&self) -> &str {
        "progress"
    }

    fn on_batch_end(&mut self, _ctx: &CallbackContext, step: &StepReport) -> ember_train::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(step.batches as u64);
            let style = ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(step.epoch.to_string());
            bar
        });
        bar.set_position(step.batch as u64 + 1);
        bar.set_message(format!("loss {:.4}", step.loss));
        Ok(())
    }

    fn on_epoch_end(&mut self, _ctx: &CallbackContext, _report: &EpochReport) -> ember_train::Result<Control> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        Ok(Control::Continue)
    }
}
