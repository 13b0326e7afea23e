//! `run.json`: what a training run was, saved beside its weights.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::args::ScheduleArg;

/// Description of a training run, written as `RUN_DIR/run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub ember_version: String,
    pub model: String,
    pub dataset: String,
    pub data_dir: Option<PathBuf>,
    pub train_images: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub schedule: ScheduleArg,
    pub pad_crop: u32,
    pub seed: u64,
    /// Input shape `[c, h, w]` the model was built for (absent in older runs: 1x28x28).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<[usize; 3]>,
    /// Output classes the model was built for (absent in older runs: 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
    pub test_accuracy: f64,
    pub seconds: f64,
}

impl RunInfo {
    /// Writes `path` atomically.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        ember_train::checkpoint::write_atomically(path, |tmp| {
            std::fs::write(tmp, &text).map_err(|source| ember_train::Error::Io { path: tmp.to_path_buf(), source })
        })?;
        Ok(())
    }

    /// Reads the `run.json` beside `checkpoint`, if there is one.
    pub fn beside(checkpoint: &Path) -> anyhow::Result<Option<Self>> {
        let path = checkpoint.with_file_name("run.json");
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        let info = serde_json::from_str(&text).with_context(|| format!("{}: not a valid run.json", path.display()))?;
        Ok(Some(info))
    }
}
