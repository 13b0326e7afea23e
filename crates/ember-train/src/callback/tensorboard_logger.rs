//! TensorBoard scalars per step and per epoch, and the confusion matrix as an image (with the
//! `plots` feature, which draws it).

use std::path::PathBuf;

use super::{Callback, CallbackContext, Control, StepReport};
use crate::tensorboard::TensorBoardWriter;
use crate::{EpochReport, Result};

/// Logs `train/loss` and `train/learning_rate` every `every` steps, the epoch metrics
/// (`epoch/train_loss`, `epoch/val_accuracy`, ...) every epoch, and the validation confusion
/// matrix as an image (with the `plots` feature), to an event file in `logdir` (opened at the first event).
///
/// Its resume state is the event file's name and length at the end of the last epoch: a resumed
/// run cuts that file back to this length and appends to it, so the epochs re-run after a kill
/// are not logged twice.
pub struct TensorBoardLogger {
    logdir: PathBuf,
    every: u64,
    class_names: Vec<String>,
    writer: Option<TensorBoardWriter>,
    /// The committed event file (name in `logdir`) and length, from a resume file.
    committed: Option<(String, u64)>,
}

impl std::fmt::Debug for TensorBoardLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorBoardLogger").field("logdir", &self.logdir).field("every", &self.every).finish()
    }
}

impl TensorBoardLogger {
    /// Logs into `logdir`, step scalars every `every` steps (at least 1).
    pub fn new(logdir: impl Into<PathBuf>, every: u64) -> Self {
        Self { logdir: logdir.into(), every: every.max(1), class_names: Vec::new(), writer: None, committed: None }
    }

    /// Names shown on the confusion-matrix image's axes.
    pub fn with_class_names(mut self, names: Vec<String>) -> Self {
        self.class_names = names;
        self
    }

    fn writer(&mut self) -> Result<&mut TensorBoardWriter> {
        if self.writer.is_none() {
            let committed = self.committed.take().map(|(name, len)| (self.logdir.join(name), len));
            self.writer = Some(match committed {
                // A file shorter than committed (lost in a crash) or gone: start a new one.
                Some((path, len)) if std::fs::metadata(&path).is_ok_and(|m| m.len() >= len) => {
                    TensorBoardWriter::reopen(&path, len)?
                }
                _ => TensorBoardWriter::create(&self.logdir)?,
            });
        }
        match self.writer.as_mut() {
            Some(w) => Ok(w),
            None => Err(crate::Error::Invalid("tensorboard writer".into())),
        }
    }
}

impl Callback for TensorBoardLogger {
    fn name(&self) -> &str {
        "tensorboard"
    }

    fn essential(&self) -> bool {
        false
    }

    fn on_batch_end(&mut self, ctx: &CallbackContext, step: &StepReport) -> Result<()> {
        if step.global_step.is_multiple_of(self.every) {
            let lr = ctx.learning_rate;
            let w = self.writer()?;
            w.scalar("train/loss", step.global_step, step.loss)?;
            w.scalar("train/learning_rate", step.global_step, lr)?;
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, _ctx: &CallbackContext, r: &EpochReport) -> Result<Control> {
        let step = r.epoch as u64;
        #[cfg(feature = "plots")]
        let names = self.class_names.clone();
        let w = self.writer()?;
        w.scalar("epoch/train_loss", step, r.train_loss)?;
        w.scalar("epoch/train_accuracy", step, r.train_accuracy)?;
        w.scalar("epoch/learning_rate", step, r.learning_rate)?;
        if let Some(v) = r.val_loss {
            w.scalar("epoch/val_loss", step, v)?;
        }
        if let Some(v) = r.val_accuracy {
            w.scalar("epoch/val_accuracy", step, v)?;
        }
        // Drawing the image needs plotters; without the `plots` feature only scalars are logged.
        #[cfg(feature = "plots")]
        if let Some(m) = &r.val_confusion {
            use crate::plots;
            let size = 480;
            let png = plots::png_bytes(plots::confusion_matrix_rgb(m, &names, size)?, size, size)?;
            w.image("epoch/confusion_matrix", step, &png, size, size, 3)?;
        }
        w.sync()?;
        Ok(Control::Continue)
    }

    fn on_train_end(&mut self, _ctx: &CallbackContext) -> Result<()> {
        if let Some(w) = self.writer.as_mut() {
            w.flush()?;
        }
        Ok(())
    }

    fn state(&self) -> serde_json::Value {
        let file = |path: &std::path::Path| path.file_name().map(|n| n.to_string_lossy().into_owned());
        match (&self.writer, &self.committed) {
            (Some(w), _) => serde_json::json!({"file": file(w.path()), "len": w.bytes_written()}),
            (None, Some((name, len))) => serde_json::json!({"file": name, "len": len}),
            (None, None) => serde_json::Value::Null,
        }
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        self.committed = match (state["file"].as_str(), state["len"].as_u64()) {
            (Some(name), Some(len)) => Some((name.to_string(), len)),
            _ => None,
        };
        Ok(())
    }
}
