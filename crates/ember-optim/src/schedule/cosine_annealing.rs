//! Cosine annealing (`CosineAnnealingLR`, Loshchilov & Hutter, 2017).

use crate::Schedule;

/// `lr = eta_min + (base_lr - eta_min) (1 + cos(pi step / t_max)) / 2`; past `t_max` the
/// cosine continues (rises again), as in PyTorch.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CosineAnnealing {
    /// Initial (largest) learning rate.
    pub base_lr: f64,
    /// Steps from `base_lr` down to `eta_min`.
    pub t_max: usize,
    /// Smallest learning rate.
    pub eta_min: f64,
}

impl Schedule for CosineAnnealing {
    fn learning_rate(&self, step: usize) -> f64 {
        let phase = std::f64::consts::PI * step as f64 / self.t_max.max(1) as f64;
        self.eta_min + (self.base_lr - self.eta_min) * (1.0 + phase.cos()) / 2.0
    }
}
