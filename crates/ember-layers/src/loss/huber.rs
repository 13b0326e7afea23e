//! Huber and smooth-L1 losses.

use candle_core::{Result, Tensor};

use super::{reduce, same_shape, Reduction};

/// Huber loss (PyTorch's `F.huber_loss`): with `d = |input - target|`, `0.5 d²` where
/// `d < delta` and `delta (d - 0.5 delta)` elsewhere.
///
/// # Shapes
/// - `input`, `target`: the same shape
/// - output: scalar, or the input's shape with [`Reduction::None`]
pub fn huber(input: &Tensor, target: &Tensor, delta: f64, reduction: Reduction) -> Result<Tensor> {
    same_shape("huber", input, target)?;
    if delta <= 0.0 {
        candle_core::bail!("huber: delta {delta} must be positive")
    }
    let d = (input - target)?.abs()?;
    let quadratic = d.sqr()?.affine(0.5, 0.0)?;
    let linear = d.affine(delta, -0.5 * delta * delta)?;
    reduce(&d.lt(delta)?.where_cond(&quadratic, &linear)?, reduction)
}

/// Smooth-L1 loss (PyTorch's `F.smooth_l1_loss`): `0.5 d² / beta` where `d < beta` and
/// `d - 0.5 beta` elsewhere; equals `huber(.., beta) / beta`.
///
/// # Shapes
/// - `input`, `target`: the same shape
/// - output: scalar, or the input's shape with [`Reduction::None`]
pub fn smooth_l1(input: &Tensor, target: &Tensor, beta: f64, reduction: Reduction) -> Result<Tensor> {
    same_shape("smooth_l1", input, target)?;
    if beta <= 0.0 {
        candle_core::bail!("smooth_l1: beta {beta} must be positive (use l1 for beta = 0)")
    }
    huber(input, target, beta, reduction)? / beta
}
