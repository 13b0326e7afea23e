//! `run.json`: what a training run was and what it reached, saved beside its weights.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::train_config::TrainConfig;

/// Description of a training run, written as `RUN_DIR/run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub ember_version: String,
    #[serde(flatten)]
    pub config: TrainConfig,
    pub train_images: usize,
    pub epochs_run: usize,
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

    /// The model and dataset named by the `run.json` beside `checkpoint`, if there is one.
    pub fn model_and_dataset_beside(checkpoint: &Path) -> anyhow::Result<Option<(String, String)>> {
        let path = checkpoint.with_file_name("run.json");
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not a valid run.json", path.display()))?;
        match (v["model"].as_str(), v["dataset"].as_str()) {
            (Some(m), Some(d)) => Ok(Some((m.to_string(), d.to_string()))),
            _ => anyhow::bail!("{}: no `model` and `dataset` entries", path.display()),
        }
    }
}
