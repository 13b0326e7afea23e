//! `metrics.csv`: one row per epoch.

use std::path::PathBuf;

use super::{Callback, CallbackContext, Control};
use crate::{checkpoint, EpochReport, Error, Result};

/// Rewrites `path` after every epoch with one row per completed epoch (atomically, from the
/// full history, so a resumed run never duplicates rows).
#[derive(Debug, Clone)]
pub struct CsvLogger {
    path: PathBuf,
}

impl CsvLogger {
    /// Logs to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v}")).unwrap_or_default()
}

impl Callback for CsvLogger {
    fn name(&self) -> &str {
        "csv_logger"
    }

    fn essential(&self) -> bool {
        false
    }

    fn on_epoch_end(&mut self, ctx: &CallbackContext, _report: &EpochReport) -> Result<Control> {
        let mut text = String::from("epoch,train_loss,train_accuracy,val_loss,val_accuracy,learning_rate,seconds\n");
        for r in ctx.history {
            text.push_str(&format!(
                "{},{},{},{},{},{},{:.3}\n",
                r.epoch,
                r.train_loss,
                r.train_accuracy,
                opt(r.val_loss),
                opt(r.val_accuracy),
                r.learning_rate,
                r.seconds
            ));
        }
        checkpoint::write_atomically(&self.path, |tmp| {
            std::fs::write(tmp, &text).map_err(|source| Error::Io { path: tmp.to_path_buf(), source })
        })?;
        Ok(Control::Continue)
    }
}
