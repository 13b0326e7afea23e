//! Reduce the learning rate when a metric stops improving (`ReduceLROnPlateau`).

use serde::{Deserialize, Serialize};

use crate::Optimizer;

/// Whether the monitored metric should go down (a loss) or up (an accuracy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlateauMode {
    /// Lower is better.
    Min,
    /// Higher is better.
    Max,
}

/// Multiplies the learning rate by `factor` once the metric has not improved (by more than the
/// relative `threshold`) for more than `patience` observations, then waits `cooldown`
/// observations; never below `min_lr`. PyTorch's semantics with `threshold_mode="rel"`.
///
/// Its state is serialisable (serde), so a resumed run continues exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReduceOnPlateau {
    /// Direction of improvement.
    pub mode: PlateauMode,
    /// Multiplier applied on a plateau.
    pub factor: f64,
    /// Observations without improvement tolerated.
    pub patience: usize,
    /// Relative improvement that counts.
    pub threshold: f64,
    /// Observations to wait after a reduction.
    pub cooldown: usize,
    /// Lower bound of the learning rate.
    pub min_lr: f64,
    /// Smallest change of the rate worth making.
    pub eps: f64,
    lr: f64,
    best: f64,
    bad_epochs: usize,
    cooldown_counter: usize,
}

impl ReduceOnPlateau {
    /// PyTorch's defaults (factor 0.1, patience 10, threshold 1e-4, no cooldown) starting at `lr`.
    pub fn new(lr: f64, mode: PlateauMode) -> Self {
        let best = match mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        };
        Self {
            mode,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
            lr,
            best,
            bad_epochs: 0,
            cooldown_counter: 0,
        }
    }

    /// The current learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.lr
    }

    fn is_better(&self, value: f64) -> bool {
        match self.mode {
            PlateauMode::Min => value < self.best * (1.0 - self.threshold),
            PlateauMode::Max => value > self.best * (1.0 + self.threshold),
        }
    }

    /// Records one observation of the metric and returns the learning rate to use next.
    pub fn observe(&mut self, metric: f64) -> f64 {
        if self.is_better(metric) {
            self.best = metric;
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.bad_epochs = 0;
        }
        if self.bad_epochs > self.patience {
            let new_lr = (self.lr * self.factor).max(self.min_lr);
            if self.lr - new_lr > self.eps {
                self.lr = new_lr;
            }
            self.cooldown_counter = self.cooldown;
            self.bad_epochs = 0;
        }
        self.lr
    }

    /// [`ReduceOnPlateau::observe`], then sets `optimizer`'s learning rate.
    pub fn step(&mut self, metric: f64, optimizer: &mut dyn Optimizer) {
        optimizer.set_learning_rate(self.observe(metric));
    }
}
