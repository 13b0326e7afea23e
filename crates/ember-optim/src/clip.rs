//! Gradient clipping, as PyTorch's `clip_grad_norm_` and `clip_grad_value_`.

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Var};

/// Scales the gradients of `params` so their global L2 norm is at most `max_norm`
/// (`g *= min(1, max_norm / (norm + 1e-6))`); returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, params: &[Var], max_norm: f64) -> Result<f64> {
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
    for p in params {
        if let Some(g) = grads.get(p) {
            let clamped = g.clamp(-clip_value, clip_value)?;
            grads.insert(p, clamped);
        }
    }
    Ok(())
}
