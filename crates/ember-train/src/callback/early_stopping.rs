//! Stop when a monitored metric stops improving, optionally restoring the best weights.

use std::collections::BTreeMap;

use candle_core::Tensor;
use serde_json::json;

use super::{Callback, CallbackContext, Control};
use crate::{EpochReport, Error, Result};

/// Whether lower or higher values of the monitored metric are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Lower is better (a loss).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// Keras' `EarlyStopping`: after `patience` epochs without an improvement larger than
/// `min_delta` in `monitor`, training stops; with `restore_best`, the weights of the best epoch
/// are put back when training ends.
#[derive(Debug, Clone)]
pub struct EarlyStopping {
    monitor: String,
    mode: Mode,
    patience: usize,
    min_delta: f64,
    restore_best: bool,
    best: Option<f64>,
    best_epoch: usize,
    wait: usize,
    stopped_epoch: Option<usize>,
    best_weights: Option<BTreeMap<String, Tensor>>,
}

impl EarlyStopping {
    /// Watches `monitor` (`val_loss`, `val_accuracy`, `train_loss`, ...) with `patience`.
    pub fn new(monitor: &str, mode: Mode, patience: usize) -> Self {
        Self {
            monitor: monitor.to_string(),
            mode,
            patience,
            min_delta: 0.0,
            restore_best: false,
            best: None,
            best_epoch: 0,
            wait: 0,
            stopped_epoch: None,
            best_weights: None,
        }
    }

    /// Only improvements larger than `min_delta` count.
    pub fn with_min_delta(mut self, min_delta: f64) -> Self {
        self.min_delta = min_delta.abs();
        self
    }

    /// Restores the best epoch's parameters and buffers when training ends.
    pub fn with_restore_best(mut self, restore: bool) -> Self {
        self.restore_best = restore;
        self
    }

    /// The epoch (1-based) at which training was stopped, if it was.
    pub fn stopped_epoch(&self) -> Option<usize> {
        self.stopped_epoch
    }

    /// The best epoch (1-based) and its value.
    pub fn best(&self) -> Option<(usize, f64)> {
        self.best.map(|b| (self.best_epoch, b))
    }

    /// Feeds one value; returns whether to stop. (The callback calls this; exposed so the rule
    /// can be tested on a scripted sequence.)
    pub fn observe(&mut self, epoch: usize, value: f64) -> bool {
        let improved = match (self.best, self.mode) {
            (None, _) => true,
            (Some(b), Mode::Min) => value < b - self.min_delta,
            (Some(b), Mode::Max) => value > b + self.min_delta,
        };
        if improved {
            self.best = Some(value);
            self.best_epoch = epoch;
            self.wait = 0;
            false
        } else {
            self.wait += 1;
            self.wait >= self.patience
        }
    }
}

impl Callback for EarlyStopping {
    fn name(&self) -> &str {
        "early_stopping"
    }

    fn on_epoch_end(&mut self, ctx: &CallbackContext, report: &EpochReport) -> Result<Control> {
        let value = report.metric(&self.monitor).ok_or_else(|| {
            Error::Invalid(format!("early stopping: metric `{}` is not reported (no validation set?)", self.monitor))
        })?;
        let before = self.best_epoch;
        let stop = self.observe(report.epoch, value);
        if self.restore_best && self.best_epoch != before {
            self.best_weights = Some(
                ctx.store
                    .state()
                    .into_iter()
                    .map(|(k, t)| t.copy().map(|t| (k, t)))
                    .collect::<candle_core::Result<_>>()?,
            );
        }
        if stop {
            self.stopped_epoch = Some(report.epoch);
            return Ok(Control::Stop);
        }
        Ok(Control::Continue)
    }

    fn on_train_end(&mut self, ctx: &CallbackContext) -> Result<()> {
        if let (true, Some(weights)) = (self.restore_best, &self.best_weights) {
            for (name, t) in weights {
                ctx.store.assign(name, t)?;
            }
        }
        Ok(())
    }

    fn state(&self) -> serde_json::Value {
        json!({"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait})
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        self.best = state["best"].as_f64();
        self.best_epoch = state["best_epoch"].as_u64().unwrap_or(0) as usize;
        self.wait = state["wait"].as_u64().unwrap_or(0) as usize;
        Ok(())
    }
}
