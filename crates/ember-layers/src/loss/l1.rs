//! Mean absolute error.

use candle_core::{Result, Tensor};

use super::{reduce, same_shape, Reduction};

/// `|input - target|`, reduced (PyTorch's `F.l1_loss`).
///
/// # Shapes
/// - `input`, `target`: the same shape
/// - output: scalar, or the input's shape with [`Reduction::None`]
pub fn l1(input: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    same_shape("l1", input, target)?;
    reduce(&(input - target)?.abs()?, reduction)
}
