//! The optimizer and schedule traits, and saved optimizer state.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Error, GroupOptions, Result};

/// Everything an optimizer needs to continue exactly where it stopped: per-parameter buffers
/// keyed `"{param}.{slot}"` (e.g. `"fc1.weight.exp_avg"`, `"fc1.weight.step"`), the number of
/// steps taken, and what the optimizer and its groups were ([`OptimizerMeta`]).
#[derive(Debug, Clone, Default)]
pub struct OptimizerState {
    /// Named buffers.
    pub buffers: BTreeMap<String, Tensor>,
    /// Largest step count over the parameters.
    pub step: u64,
    /// Optimizer name, hyper-parameters and group settings.
    pub meta: OptimizerMeta,
}

/// What a saved optimizer state says besides its buffers; restoring checks it against the
/// optimizer it is loaded into, so a state never lands in another rule or grouping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OptimizerMeta {
    /// The rule's name (`"adam"`, `"sgd"`, ...).
    pub optimizer: String,
    /// Names of the per-element state slots, in storage order.
    pub slots: Vec<String>,
    /// The learning rate in force (a schedule's latest).
    pub lr: f64,
    /// The learning rate at construction; group rates are kept as ratios to it.
    pub initial_lr: f64,
    /// The momentum (β1 for Adam) in force, for rules that have one.
    pub momentum: Option<f64>,
    /// The parameter groups, in order.
    pub groups: Vec<GroupRecord>,
}

/// One parameter group as an optimizer keeps and saves it: its name, what it overrides and the
/// names of its parameters, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// The group's name.
    pub name: String,
    /// What the group overrides.
    #[serde(flatten)]
    pub options: GroupOptions,
    /// Its parameters' names.
    pub params: Vec<String>,
}

/// The JSON file [`OptimizerState::save`] writes beside the buffers.
#[derive(Serialize, Deserialize)]
struct StateFile {
    step: u64,
    meta: OptimizerMeta,
}

impl OptimizerState {
    /// Writes the buffers to `path` (safetensors) and the rest to `path` with extension `json`,
    /// each atomically ([`ember_io::write_atomically`]: temporary file, fsync, rename, fsync of
    /// the directory), so a crash leaves the previous state intact.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json_path = path.with_extension("json");
        let file = StateFile { step: self.step, meta: self.meta.clone() };
        let text = serde_json::to_string_pretty(&file).map_err(|e| file_err(&json_path, e))?;
        let buffers: std::collections::HashMap<String, Tensor> = self.buffers.clone().into_iter().collect();
        ember_io::write_atomically(path, |tmp| {
            candle_core::safetensors::save(&buffers, tmp).map_err(|e| file_err(tmp, e))
        })?;
        ember_io::write_atomically(&json_path, |tmp| std::fs::write(tmp, &text).map_err(|e| file_err(tmp, e)))
    }

    /// Reads a state written by [`OptimizerState::save`], placing buffers on `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let json_path = path.with_extension("json");
        let text = std::fs::read_to_string(&json_path).map_err(|e| file_err(&json_path, e))?;
        let file: StateFile = serde_json::from_str(&text).map_err(|e| file_err(&json_path, e))?;
        let buffers = candle_core::safetensors::load(path, device).map_err(|e| file_err(path, e))?;
        Ok(Self { buffers: buffers.into_iter().collect(), step: file.step, meta: file.meta })
    }
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::File { path: path.to_path_buf(), detail: e.to_string() }
}

/// An optimizer over named parameters.
pub trait Optimizer {
    /// Applies one update from the gradients in `grads`. Parameters without a gradient are
    /// left untouched and do not advance their step count.
    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()>;

    /// Current (base) learning rate.
    fn learning_rate(&self) -> f64;

    /// Sets the base learning rate used by the next [`Optimizer::step`]; groups with their own
    /// learning rate keep their ratio to it.
    fn set_learning_rate(&mut self, lr: f64);

    /// Sets the momentum term (Adam's β1, SGD's and RMSprop's momentum) of every group, for
    /// schedules that cycle momentum. Optimizers without one ignore it.
    fn set_momentum(&mut self, momentum: f64);

    /// A copy of the full state.
    fn state(&self) -> Result<OptimizerState>;

    /// Restores a state produced by [`Optimizer::state`]; fails, changing nothing, with a typed
    /// error naming the parameter when a buffer is missing, unknown or of the wrong shape.
    fn load_state(&mut self, state: OptimizerState) -> Result<()>;
}

/// A boxed optimizer (what [`crate::OptimizerConfig::build`] returns) is an optimizer.
impl<O: Optimizer + ?Sized> Optimizer for Box<O> {
    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        (**self).step(grads)
    }

    fn learning_rate(&self) -> f64 {
        (**self).learning_rate()
    }

    fn set_learning_rate(&mut self, lr: f64) {
        (**self).set_learning_rate(lr)
    }

    fn set_momentum(&mut self, momentum: f64) {
        (**self).set_momentum(momentum)
    }

    fn state(&self) -> Result<OptimizerState> {
        (**self).state()
    }

    fn load_state(&mut self, state: OptimizerState) -> Result<()> {
        (**self).load_state(state)
    }
}

/// A boxed schedule (what [`crate::ScheduleConfig::build`] returns) is a schedule.
impl<S: Schedule + ?Sized> Schedule for Box<S> {
    fn learning_rate(&self, step: usize) -> f64 {
        (**self).learning_rate(step)
    }

    fn momentum(&self, step: usize) -> Option<f64> {
        (**self).momentum(step)
    }

    fn apply(&self, step: usize, optimizer: &mut dyn Optimizer) {
        (**self).apply(step, optimizer)
    }
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
