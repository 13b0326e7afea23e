//! Decay at given milestones (`MultiStepLR`).

use crate::Schedule;

/// `lr = base_lr * gamma^(number of milestones <= step)`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MultiStep {
    /// Initial learning rate.
    pub base_lr: f64,
    /// Steps at which the rate is multiplied by `gamma` (any order; repeats count twice).
    pub milestones: Vec<usize>,
    /// Multiplier at each milestone.
    pub gamma: f64,
}

impl Schedule for MultiStep {
    fn learning_rate(&self, step: usize) -> f64 {
        let passed = self.milestones.iter().filter(|&&m| m <= step).count();
        self.base_lr * self.gamma.powi(passed as i32)
    }
}
