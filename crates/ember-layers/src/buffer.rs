//! Non-trainable state a model saves with its weights.

use candle_core::{Result, Tensor, Var};

/// A buffer: state saved with the weights but never trained (batch norm's `running_mean` and
/// `running_var`), updated in place by its layer.
///
/// That a tensor is a buffer is said by its type, so code walking a model
/// ([`crate::ModuleTree`]) never decides it from a name suffix. The `Var` shares the
/// [`ParamStore`](crate::ParamStore)'s storage, so in-place updates reach the store and its
/// checkpoints.
#[derive(Debug, Clone)]
pub struct Buffer {
    var: Var,
}

impl Buffer {
    /// A buffer over `value`'s storage when it is a variable (as a `ParamStore`'s buffers are),
    /// else over a copy.
    pub fn new(value: &Tensor) -> Result<Self> {
        Ok(Self { var: Var::from_tensor(value)? })
    }

    /// The current value, detached (buffers never take part in backpropagation).
    pub fn value(&self) -> Tensor {
        self.var.as_tensor().detach()
    }

    /// The tensor as held.
    pub fn tensor(&self) -> &Tensor {
        self.var.as_tensor()
    }

    /// Overwrites the value in place (converted to the buffer's dtype); fails when the shapes
    /// differ.
    pub fn set(&self, value: &Tensor) -> Result<()> {
        self.var.set(&value.to_dtype(self.var.dtype())?)
    }
}
