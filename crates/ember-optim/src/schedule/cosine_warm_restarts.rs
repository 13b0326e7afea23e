//! Cosine annealing with warm restarts (`CosineAnnealingWarmRestarts`, SGDR).

use crate::Schedule;

/// Cosine annealing from `base_lr` to `eta_min` over `t_0` steps, then restarting, each cycle
/// `t_mult` times longer than the last.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CosineWarmRestarts {
    /// Learning rate at the start of every cycle.
    pub base_lr: f64,
    /// Length of the first cycle.
    pub t_0: usize,
    /// Growth factor of the cycle length (1 keeps cycles equal).
    pub t_mult: usize,
    /// Smallest learning rate.
    pub eta_min: f64,
}

impl Schedule for CosineWarmRestarts {
    fn learning_rate(&self, step: usize) -> f64 {
        // Walk the cycles in integers: exact, and cheap (cycles grow geometrically or are few).
        let (mut t_cur, mut t_i) = (step, self.t_0.max(1));
        while t_cur >= t_i {
            t_cur -= t_i;
            t_i *= self.t_mult.max(1);
        }
        let phase = std::f64::consts::PI * t_cur as f64 / t_i as f64;
        self.eta_min + (self.base_lr - self.eta_min) * (1.0 + phase.cos()) / 2.0
    }
}
