//! The one-cycle learning-rate policy (Smith & Topin, 2018) with PyTorch's `OneCycleLR`
//! semantics.

use crate::Schedule;

/// Learning rate rises from `max_lr / div_factor` to `max_lr` over the first `pct_start` of
/// the steps, then anneals to `max_lr / (div_factor * final_div_factor)`, both phases along a
/// cosine. When `cycle_momentum` is on, momentum moves the opposite way between
/// `max_momentum` and `base_momentum`.
///
/// Defaults equal PyTorch's `OneCycleLR`: `pct_start` 0.3, `div_factor` 25,
/// `final_div_factor` 1e4, momentum cycled between 0.95 and 0.85.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OneCycle {
    /// Peak learning rate.
    pub max_lr: f64,
    /// Number of optimizer steps in the whole cycle.
    pub total_steps: usize,
    /// Fraction of steps spent increasing the learning rate.
    pub pct_start: f64,
    /// `initial_lr = max_lr / div_factor`.
    pub div_factor: f64,
    /// `min_lr = initial_lr / final_div_factor`.
    pub final_div_factor: f64,
    /// Whether momentum is cycled inversely to the learning rate.
    pub cycle_momentum: bool,
    /// Lowest momentum (reached at the peak learning rate).
    pub base_momentum: f64,
    /// Highest momentum (at the start and the end).
    pub max_momentum: f64,
}

impl OneCycle {
    /// PyTorch's defaults for a peak of `max_lr` over `total_steps` steps.
    pub fn new(max_lr: f64, total_steps: usize) -> Self {
        Self {
            max_lr,
            total_steps,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
            cycle_momentum: true,
            base_momentum: 0.85,
            max_momentum: 0.95,
        }
    }

    /// Same schedule with momentum left alone.
    pub fn without_momentum_cycle(mut self) -> Self {
        self.cycle_momentum = false;
        self
    }

    /// `(phase_start_value, phase_end_value, fraction_of_phase)` for `step`, on a 0..1 scale
    /// where 0 is the phase's first and 1 its last value.
    fn phase(&self, step: usize) -> (bool, f64) {
        let step = step.min(self.total_steps.saturating_sub(1)) as f64;
        let warm_end = self.pct_start * self.total_steps as f64 - 1.0;
        let last = self.total_steps as f64 - 1.0;
        if step <= warm_end {
            (true, if warm_end > 0.0 { step / warm_end } else { 1.0 })
        } else {
            let span = last - warm_end;
            (false, if span > 0.0 { (step - warm_end) / span } else { 1.0 })
        }
    }
}

/// Cosine interpolation from `start` (pct 0) to `end` (pct 1), as PyTorch's `_annealing_cos`.
fn annealing_cos(start: f64, end: f64, pct: f64) -> f64 {
    let cos_out = (std::f64::consts::PI * pct).cos() + 1.0;
    end + (start - end) / 2.0 * cos_out
}

impl Schedule for OneCycle {
    fn learning_rate(&self, step: usize) -> f64 {
        let initial = self.max_lr / self.div_factor;
        let min = initial / self.final_div_factor;
        match self.phase(step) {
            (true, pct) => annealing_cos(initial, self.max_lr, pct),
            (false, pct) => annealing_cos(self.max_lr, min, pct),
        }
    }

    fn momentum(&self, step: usize) -> Option<f64> {
        if !self.cycle_momentum {
            return None;
        }
        Some(match self.phase(step) {
            (true, pct) => annealing_cos(self.max_momentum, self.base_momentum, pct),
            (false, pct) => annealing_cos(self.base_momentum, self.max_momentum, pct),
        })
    }
}
