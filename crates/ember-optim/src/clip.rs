//! Gradient clipping, as PyTorch's `clip_grad_norm_` and `clip_grad_value_`.

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Var};

/// Scales the gradients of `params` so their global L2 norm is at most `max_norm`
/// (`g *= min(1, max_norm / (norm + 1e-6))`); returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, params: &[Var], max_norm: f64) -> Result<f64> {
    // A negative bound would flip every gradient (gradient ascent), zero would stop learning.
    if !(max_norm > 0.0 && max_norm.is_finite()) {
        candle_core::bail!("gradient clipping: the maximum norm must be a positive number, got {max_norm}")
    }
    let mut sum_sq = 0.0;
    for p in params {
        if let Some(g) = grads.get(p) {
            sum_sq += g.to_dtype(DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
        }
    }
    let total = sum_sq.sqrt();
    let coef = (max_norm / (total + 1e-6)).min(1.0);
    if coef < 1.0 {
        for p in params {
            if let Some(g) = grads.get(p) {
                let scaled = (g * coef)?;
                grads.insert(p, scaled);
            }
        }
    }
    Ok(total)
}

/// Clamps every gradient element of `params` to `[-clip_value, clip_value]`.
pub fn clip_grad_value(grads: &mut GradStore, params: &[Var], clip_value: f64) -> Result<()> {
    if !(clip_value > 0.0 && clip_value.is_finite()) {
        candle_core::bail!("gradient clipping: the clip value must be a positive number, got {clip_value}")
    }
    for p in params {
        if let Some(g) = grads.get(p) {
            let clamped = g.clamp(-clip_value, clip_value)?;
            grads.insert(p, clamped);
        }
    }
    Ok(())
}
