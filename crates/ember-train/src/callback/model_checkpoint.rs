//! Save `last.safetensors` every epoch and `best.safetensors` when a metric improves.

use std::path::PathBuf;

use serde_json::json;

use super::{Callback, CallbackContext, Control, Mode};
use crate::{checkpoint, EpochReport, Result};

/// Writes the model (parameters and buffers) to `dir/last.safetensors` after every epoch and
/// to `dir/best.safetensors` whenever `monitor` improves. Both writes are atomic (temporary
/// file, fsync, rename): a crash mid-write leaves the previous file intact.
#[derive(Debug, Clone)]
pub struct ModelCheckpoint {
    dir: PathBuf,
    monitor: String,
    mode: Mode,
    best: Option<f64>,
    metadata: std::collections::HashMap<String, String>,
}

impl ModelCheckpoint {
    /// Checkpoints into `dir`, judging "best" by `monitor` in `mode`.
    pub fn new(dir: impl Into<PathBuf>, monitor: &str, mode: Mode) -> Self {
        Self { dir: dir.into(), monitor: monitor.to_string(), mode, best: None, metadata: Default::default() }
    }

    /// Writes `metadata` (e.g. a model card) into the header of every checkpoint.
    pub fn with_metadata(mut self, metadata: std::collections::HashMap<String, String>) -> Self {
        self.metadata = metadata;
        self
    }
}

impl Callback for ModelCheckpoint {
    fn name(&self) -> &str {
        "model_checkpoint"
    }

    fn on_epoch_end(&mut self, ctx: &CallbackContext, report: &EpochReport) -> Result<Control> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|source| crate::Error::Io(ember_io::IoError { path: self.dir.clone(), source }))?;
        checkpoint::save_with_metadata(ctx.store, self.metadata.clone(), &self.dir.join("last.safetensors"))?;
        if let Some(v) = report.metric(&self.monitor) {
            let better = match (self.best, self.mode) {
                (None, _) => true,
                (Some(b), Mode::Min) => v < b,
                (Some(b), Mode::Max) => v > b,
            };
            if better {
                self.best = Some(v);
                checkpoint::save_with_metadata(ctx.store, self.metadata.clone(), &self.dir.join("best.safetensors"))?;
            }
        }
        Ok(Control::Continue)
    }

    fn state(&self) -> serde_json::Value {
        json!({ "best": self.best })
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        self.best = state["best"].as_f64();
        Ok(())
    }
}
