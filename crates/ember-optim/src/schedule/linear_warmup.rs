//! Linear warm-up in front of any schedule.

use crate::Schedule;

/// For the first `warmup_steps` steps the rate rises linearly from
/// `start_factor * after.lr(0)` towards `after.lr(0)`; then `after` runs from its step 0.
/// Equals PyTorch's `SequentialLR([LinearLR(start_factor, total_iters=w), after], milestones=[w])`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinearWarmup<S> {
    /// Length of the warm-up.
    pub warmup_steps: usize,
    /// Fraction of the target rate at step 0.
    pub start_factor: f64,
    /// The schedule that follows.
    pub after: S,
}

impl<S: Schedule> Schedule for LinearWarmup<S> {
    fn learning_rate(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            let frac = step as f64 / self.warmup_steps as f64;
            self.after.learning_rate(0) * (self.start_factor + (1.0 - self.start_factor) * frac)
        } else {
            self.after.learning_rate(step - self.warmup_steps)
        }
    }

    fn momentum(&self, step: usize) -> Option<f64> {
        self.after.momentum(step.saturating_sub(self.warmup_steps))
    }
}
