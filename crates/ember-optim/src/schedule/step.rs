//! Step decay (`StepLR`).

use crate::Schedule;

/// `lr = base_lr * gamma^floor(step / step_size)`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepDecay {
    /// Initial learning rate.
    pub base_lr: f64,
    /// Steps between decays.
    pub step_size: usize,
    /// Multiplier at each decay.
    pub gamma: f64,
}

impl Schedule for StepDecay {
    fn learning_rate(&self, step: usize) -> f64 {
        self.base_lr * self.gamma.powi((step / self.step_size.max(1)) as i32)
    }
}
