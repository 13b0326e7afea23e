//! Binary cross-entropy on logits.

use candle_core::{Result, Tensor};

use super::{reduce, same_shape, Reduction};

/// Options of [`binary_cross_entropy_with_logits`] (PyTorch's defaults from `Default`).
#[derive(Debug, Clone, Default)]
pub struct BceWithLogitsConfig {
    /// Per-element weights, broadcast against the input.
    pub weight: Option<Tensor>,
    /// Weight of positive examples per class, broadcast against the input.
    pub pos_weight: Option<Tensor>,
    /// Mean, sum or none.
    pub reduction: Reduction,
}

/// `-[p y log σ(x) + (1 - y) log(1 - σ(x))]` computed stably from logits as PyTorch's
/// `F.binary_cross_entropy_with_logits`: `(1 - y) x + l (log(1 + e^-|x|) + max(-x, 0))` with
/// `l = (p - 1) y + 1`.
///
/// # Shapes
/// - `logits`, `targets`: the same shape, targets in `[0, 1]`
/// - output: scalar, or the input's shape with [`Reduction::None`]
pub fn binary_cross_entropy_with_logits(
    logits: &Tensor,
    targets: &Tensor,
    cfg: &BceWithLogitsConfig,
) -> Result<Tensor> {
    same_shape("binary_cross_entropy_with_logits", logits, targets)?;
    let softplus_neg_abs = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    let tail = (softplus_neg_abs + logits.neg()?.relu()?)?;
    let tail = match &cfg.pos_weight {
        Some(p) => tail.broadcast_mul(&(targets.broadcast_mul(&(p - 1.0)?)? + 1.0)?)?,
        None => tail,
    };
    let mut losses = (targets.affine(-1.0, 1.0)? * logits)?.add(&tail)?;
    if let Some(w) = &cfg.weight {
        losses = losses.broadcast_mul(w)?;
    }
    reduce(&losses, cfg.reduction)
}
