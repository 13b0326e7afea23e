//! Exponential decay (`ExponentialLR`).

use crate::Schedule;

/// `lr = base_lr * gamma^step`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Exponential {
    /// Initial learning rate.
    pub base_lr: f64,
    /// Multiplier per step.
    pub gamma: f64,
}

impl Schedule for Exponential {
    fn learning_rate(&self, step: usize) -> f64 {
        self.base_lr * self.gamma.powi(step as i32)
    }
}
