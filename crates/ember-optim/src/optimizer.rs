//! The optimizer and schedule traits.

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};

/// Everything an optimizer needs to continue exactly where it stopped: per-parameter buffers
/// keyed `"{param}.{slot}"` (e.g. `"fc1.weight.exp_avg"`) and the number of steps taken.
#[derive(Debug, Clone, Default)]
pub struct OptimizerState {
    /// Named buffers.
    pub buffers: BTreeMap<String, Tensor>,
    /// Steps taken so far.
    pub step: u64,
}

/// An optimizer over named parameters.
pub trait Optimizer {
    /// Applies one update from the gradients in `grads`. Parameters without a gradient are
    /// left untouched.
    fn step(&mut self, grads: &GradStore) -> Result<()>;

    /// Current learning rate.
    fn learning_rate(&self) -> f64;

    /// Sets the learning rate used by the next [`Optimizer::step`].
    fn set_learning_rate(&mut self, lr: f64);

    /// Sets the momentum term (Adam's β1, SGD's momentum) used by the next step, for schedules
    /// that cycle momentum. Optimizers without one ignore it.
    fn set_momentum(&mut self, momentum: f64);

    /// A copy of the full state.
    fn state(&self) -> OptimizerState;

    /// Restores a state produced by [`Optimizer::state`]; fails naming the buffer when one is
    /// missing, unknown or of the wrong shape.
    fn load_state(&mut self, state: OptimizerState) -> Result<()>;
}

/// A learning-rate (and optionally momentum) schedule indexed by optimizer step.
pub trait Schedule {
    /// Learning rate for step `step` (0-based).
    fn learning_rate(&self, step: usize) -> f64;

    /// Momentum for step `step`, if the schedule cycles momentum.
    fn momentum(&self, _step: usize) -> Option<f64> {
        None
    }

    /// Sets `optimizer`'s learning rate (and momentum) for step `step`.
    fn apply(&self, step: usize, optimizer: &mut dyn Optimizer) {
        optimizer.set_learning_rate(self.learning_rate(step));
        if let Some(m) = self.momentum(step) {
            optimizer.set_momentum(m);
        }
    }
}
