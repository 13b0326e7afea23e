//! A model's state split by kind: trainable parameters and buffers, read from its tree.

use candle_core::{Tensor, Var};

use crate::{Entry, ModuleTree};

/// A model's `state_dict`, split: trainable parameters (frozen ones included) and buffers,
/// each `(path, tensor)` in the tree's order.
#[derive(Debug, Clone, Default)]
pub struct StateSplit {
    /// Parameters (`conv1.weight`, ...), frozen or not.
    pub params: Vec<(String, Tensor)>,
    /// Buffers (`bn1.running_mean`, ...).
    pub buffers: Vec<(String, Tensor)>,
}

impl StateSplit {
    /// Parameters then buffers: the whole state, as a checkpoint saves it.
    pub fn all(&self) -> impl Iterator<Item = &(String, Tensor)> {
        self.params.iter().chain(&self.buffers)
    }

    /// Number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.params.iter().map(|(_, t)| t.elem_count()).sum()
    }

    /// Number of buffer elements.
    pub fn num_buffer_elems(&self) -> usize {
        self.buffers.iter().map(|(_, t)| t.elem_count()).sum()
    }
}

/// Splits `model`'s state into parameters and buffers by their type (never by name).
pub fn split_state(model: &(impl ModuleTree + ?Sized)) -> StateSplit {
    let mut split = StateSplit::default();
    model.visit(&mut |path, entry| match entry {
        Entry::Param(p) => split.params.push((path.to_string(), p.tensor().clone())),
        Entry::Buffer(b) => split.buffers.push((path.to_string(), b.tensor().clone())),
        Entry::Layer(_) => {}
    });
    split
}

/// What an optimizer should get: every parameter that is not frozen and is a variable (a
/// computed weight, such as an adapted one, is not), in the tree's order.
pub fn trainable_vars(model: &(impl ModuleTree + ?Sized)) -> Vec<(String, Var)> {
    let mut vars = Vec::new();
    model.visit(&mut |path, entry| {
        if let Entry::Param(p) = entry {
            if let Some(var) = p.var().filter(|_| !p.is_frozen()) {
                vars.push((path.to_string(), var));
            }
        }
    });
    vars
}
