//! Mean squared error.

use candle_core::{Result, Tensor};

use super::{reduce, same_shape, Reduction};

/// `(input - target)²`, reduced (PyTorch's `F.mse_loss`).
///
/// # Shapes
/// - `input`, `target`: the same shape
/// - output: scalar, or the input's shape with [`Reduction::None`]
pub fn mse(input: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    same_shape("mse", input, target)?;
    reduce(&(input - target)?.sqr()?, reduction)
}
