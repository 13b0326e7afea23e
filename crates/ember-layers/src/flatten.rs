//! Flatten all but the batch dimension.

use candle_core::{Result, Tensor};
use candle_nn::Module;

/// Reshapes `(b, d1, d2, ...)` to `(b, d1 * d2 * ...)`, like PyTorch's `nn.Flatten()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flatten;

impl Module for Flatten {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if xs.rank() < 2 {
            candle_core::bail!("flatten: expected input with a batch dimension, got {:?}", xs.dims())
        }
        xs.flatten_from(1)
    }
}
