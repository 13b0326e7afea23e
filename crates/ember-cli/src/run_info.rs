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
    /// Input shape `[c, h, w]` the model was built for.
    pub input: [usize; 3],
    /// Output classes the model was built for.
    pub classes: usize,
    /// Their names, in label order.
    #[serde(default)]
    pub class_names: Vec<String>,
    /// How inputs were normalised and cropped.
    pub preprocessing: ember_zoo::Preprocessing,
    /// Where each split came from.
    pub splits: SplitsInfo,
    /// Which weights the run kept (`best (epoch 7)`).
    pub kept: String,
    /// Accuracy on the test split, scored once at the end (absent without a test split).
    pub test_accuracy: Option<f64>,
    pub seconds: f64,
}

/// Where a run's training, validation and test examples came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitsInfo {
    pub train: String,
    pub validation: String,
    pub test: String,
}

impl SplitsInfo {
    /// The origins of `data`'s splits.
    pub fn of(data: &ember_data::DataSplits) -> Self {
        Self {
            train: data.origins.train.clone(),
            validation: data.origins.val.clone(),
            test: data.origins.test.clone(),
        }
    }
}

impl RunInfo {
    /// Writes `path` atomically.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        ember_train::checkpoint::write_atomically(path, |tmp| {
            std::fs::write(tmp, &text)
                .map_err(|source| ember_train::Error::Io(ember_train::IoError { path: tmp.to_path_buf(), source }))
        })?;
        Ok(())
    }

    /// What the `run.json` beside `checkpoint` says about the model, if there is one.
    pub fn summary_beside(checkpoint: &Path) -> anyhow::Result<Option<RunSummary>> {
        let path = checkpoint.with_file_name("run.json");
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not a valid run.json", path.display()))?;
        let (Some(model), Some(dataset)) = (v["model"].as_str(), v["dataset"].as_str()) else {
            anyhow::bail!("{}: no `model` and `dataset` entries", path.display())
        };
        let input = v["input"].as_array().and_then(|a| {
            let d: Vec<usize> = a.iter().filter_map(|x| x.as_u64().map(|x| x as usize)).collect();
            <[usize; 3]>::try_from(d).ok()
        });
        Ok(Some(RunSummary {
            model: model.into(),
            dataset: dataset.into(),
            data_dir: v["data_dir"].as_str().map(Into::into),
            input,
            classes: v["classes"].as_u64().map(|c| c as usize),
        }))
    }
}

/// The parts of a `run.json` that `ember eval` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub model: String,
    pub dataset: String,
    /// Where the data was read from, if not found by name.
    pub data_dir: Option<std::path::PathBuf>,
    /// Absent in runs older than the zoo (1x28x28).
    pub input: Option<[usize; 3]>,
    /// Absent in runs older than the zoo (10).
    pub classes: Option<usize>,
}
