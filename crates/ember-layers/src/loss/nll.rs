//! Negative log-likelihood of class indices, with class weights and an ignored index.

use candle_core::{DType, Result, Tensor};

use super::Reduction;

/// Options of [`nll`] and the NLL part of cross-entropy (PyTorch's defaults from `Default`).
#[derive(Debug, Clone)]
pub struct NllConfig {
    /// Per-class weights `(classes,)`; `None` weighs every class 1.
    pub weight: Option<Tensor>,
    /// Targets equal to this index contribute nothing (PyTorch's default: -100).
    pub ignore_index: i64,
    /// Mean (weighted by the targets' class weights), sum or none.
    pub reduction: Reduction,
}

impl Default for NllConfig {
    fn default() -> Self {
        Self { weight: None, ignore_index: -100, reduction: Reduction::Mean }
    }
}

/// Targets checked against the scores, as host values and per-sample weights.
pub(crate) struct Targets {
    /// Class index per sample, ignored samples mapped to class 0.
    pub(crate) safe: Tensor,
    /// `weight[target]` per sample, 0 for ignored samples: `(b,)`.
    pub(crate) weights: Tensor,
    /// 1 for counted samples, 0 for ignored ones: `(b,)`.
    pub(crate) present: Tensor,
    /// Sum of `weights` (the divisor of the mean).
    pub(crate) total_weight: f64,
}

/// Validates `scores` `(b, classes)` and `targets` `(b,)` and prepares the gather.
pub(crate) fn targets(loss: &str, scores: &Tensor, targets: &Tensor, cfg: &NllConfig) -> Result<Targets> {
    let (b, classes) = match scores.dims() {
        [b, c] => (*b, *c),
        dims => candle_core::bail!("{loss}: expected logits (batch, classes), got {dims:?}"),
    };
    if targets.dims() != [b] {
        candle_core::bail!("{loss}: {b} logits rows but targets have shape {:?}", targets.dims())
    }
    if targets.dtype().is_float() {
        candle_core::bail!("{loss}: expected integer class targets, got {:?}", targets.dtype())
    }
    let class_weights: Vec<f64> = match &cfg.weight {
        None => vec![1.0; classes],
        Some(w) if w.dims() == [classes] => w.to_dtype(DType::F64)?.to_vec1()?,
        Some(w) => candle_core::bail!("{loss}: class weights of shape {:?}, expected [{classes}]", w.dims()),
    };
    let raw: Vec<i64> = targets.to_dtype(DType::I64)?.to_vec1()?;
    let (mut safe, mut weights, mut present) = (Vec::with_capacity(b), Vec::with_capacity(b), vec![1f64; b]);
    for (i, &t) in raw.iter().enumerate() {
        if t == cfg.ignore_index {
            safe.push(0u32);
            weights.push(0.0);
            present[i] = 0.0;
        } else if t < 0 || t as usize >= classes {
            candle_core::bail!("{loss}: target class {t} out of range for {classes} classes")
        } else {
            safe.push(t as u32);
            weights.push(class_weights[t as usize]);
        }
    }
    let total_weight = weights.iter().sum();
    let dev = scores.device();
    Ok(Targets {
        safe: Tensor::new(safe, dev)?,
        weights: Tensor::new(weights, dev)?.to_dtype(scores.dtype())?,
        present: Tensor::new(present, dev)?.to_dtype(scores.dtype())?,
        total_weight,
    })
}

/// The weighted NLL of prepared targets.
pub(crate) fn weighted_nll(log_probs: &Tensor, t: &Targets, reduction: Reduction) -> Result<Tensor> {
    let picked = log_probs.gather(&t.safe.unsqueeze(1)?, 1)?.squeeze(1)?;
    let losses = (picked * &t.weights)?.neg()?;
    match reduction {
        Reduction::None => Ok(losses),
        Reduction::Sum => losses.sum_all(),
        Reduction::Mean => losses.sum_all()? / t.total_weight,
        Reduction::BatchMean => losses.sum_all()? / log_probs.dim(0)?.max(1) as f64,
    }
}

/// Negative log-likelihood `-weight[t] * log_probs[i, t]` of class targets (PyTorch's
/// `F.nll_loss`); the mean divides by the summed weights of the non-ignored targets.
///
/// # Shapes
/// - `log_probs`: `(b, classes)`
/// - `targets`: `(b,)`, class indices (u8, u32 or i64)
/// - output: scalar, or `(b,)` with [`Reduction::None`]
pub fn nll(log_probs: &Tensor, targets: &Tensor, cfg: &NllConfig) -> Result<Tensor> {
    let t = self::targets("nll", log_probs, targets, cfg)?;
    weighted_nll(log_probs, &t, cfg.reduction)
}
