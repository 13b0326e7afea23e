//! Cross-entropy on logits, with class weights, label smoothing and an ignored index.

use candle_core::{DType, Result, Tensor};

use super::nll::{targets, weighted_nll, NllConfig};
use super::Reduction;

/// Options of [`cross_entropy_with`] (PyTorch's defaults from `Default`).
#[derive(Debug, Clone, Default)]
pub struct CrossEntropyConfig {
    /// Class weights, ignored index and reduction, as for NLL.
    pub nll: NllConfig,
    /// Label smoothing `ε` in `[0, 1]`: the target becomes `(1 - ε) one_hot + ε / classes`.
    pub label_smoothing: f64,
}

/// Mean cross-entropy between `logits` and integer class `targets`.
///
/// # Shapes
/// - `logits`: `(b, classes)`, unnormalised scores
/// - `targets`: `(b,)`, class indices (u8, u32 or i64)
/// - output: scalar
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    cross_entropy_with(logits, targets, &CrossEntropyConfig::default())
}

/// Cross-entropy with PyTorch's options (`F.cross_entropy(logits, targets, weight,
/// ignore_index=..., reduction=..., label_smoothing=...)`), computed exactly as PyTorch does:
/// `(1 - ε) nll + ε / classes * smooth`, where `smooth_i = -Σ_c weight[c] log p[i, c]` is reduced
/// with the same divisor as the NLL term.
///
/// # Shapes
/// - `logits`: `(b, classes)`
/// - `targets`: `(b,)`, class indices (u8, u32 or i64)
/// - output: scalar, or `(b,)` with [`Reduction::None`]
pub fn cross_entropy_with(logits: &Tensor, targets: &Tensor, cfg: &CrossEntropyConfig) -> Result<Tensor> {
    let eps = cfg.label_smoothing;
    if !(0.0..=1.0).contains(&eps) {
        candle_core::bail!("cross_entropy: label smoothing {eps} is not in [0, 1]")
    }
    let fused = eps == 0.0
        && cfg.nll.weight.is_none()
        && cfg.nll.reduction == Reduction::Mean
        && logits.rank() == 2
        && matches!(targets.dtype(), DType::U8 | DType::U32 | DType::I64);
    if fused {
        if targets.dims() != [logits.dim(0)?] {
            candle_core::bail!(
                "cross_entropy: {} logits rows but targets have shape {:?}",
                logits.dim(0)?,
                targets.dims()
            )
        }
        // One pass forward and backward on the CPU, candle's ops elsewhere (ember-kernels); the
        // same value and gradient as below.
        return ember_kernels::cross_entropy(logits, targets, Some(cfg.nll.ignore_index));
    }
    let t = self::targets("cross_entropy", logits, targets, &cfg.nll)?;
    let log_probs = candle_nn::ops::log_softmax(logits, 1)?;
    let nll = weighted_nll(&log_probs, &t, cfg.nll.reduction)?;
    if eps == 0.0 {
        return Ok(nll);
    }
    let classes = logits.dim(1)?;
    let weighted = match &cfg.nll.weight {
        Some(w) => log_probs.broadcast_mul(&w.to_dtype(logits.dtype())?.unsqueeze(0)?)?,
        None => log_probs,
    };
    let smooth = (weighted.sum(1)?.neg()? * &t.present)?;
    let smooth = match cfg.nll.reduction {
        Reduction::None => smooth,
        Reduction::Sum => smooth.sum_all()?,
        Reduction::Mean => (smooth.sum_all()? / t.total_weight)?,
        Reduction::BatchMean => (smooth.sum_all()? / logits.dim(0)?.max(1) as f64)?,
    };
    nll.affine(1.0 - eps, 0.0)? + smooth.affine(eps / classes as f64, 0.0)?
}
