//! Finite-difference gradient checking.
//!
//! Compares the gradients candle's autograd computes (through every custom op's `bwd`) with
//! central differences `(f(x + h) - f(x - h)) / 2h`, in f64.

use candle_core::{DType, Result, Tensor, Var};

/// Largest disagreement between analytic and numeric gradients over all inputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradCheckReport {
    /// Largest absolute difference.
    pub max_abs_error: f64,
    /// Largest difference relative to `max(|analytic|, |numeric|, 1e-3)`.
    pub max_rel_error: f64,
    /// Number of gradient entries compared.
    pub checked: usize,
}

/// Checks the gradient of the scalar function `f` with respect to every element of `inputs`.
///
/// `inputs` are converted to f64; `f` receives them as tensors tracked by autograd and must
/// return a scalar (a tensor with one element).
pub fn check_gradients<F>(f: F, inputs: &[Tensor], step: f64) -> Result<GradCheckReport>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(&t.to_dtype(DType::F64)?)).collect::<Result<_>>()?;
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let loss = f(&tensors)?;
    if loss.elem_count() != 1 {
        candle_core::bail!("check_gradients: f returned shape {:?}, expected a scalar", loss.shape())
    }
    let grads = loss.sum_all()?.backward()?;

    let mut report = GradCheckReport { max_abs_error: 0.0, max_rel_error: 0.0, checked: 0 };
    for (k, var) in vars.iter().enumerate() {
        let analytic = match grads.get(var) {
            Some(g) => g.flatten_all()?.to_vec1::<f64>()?,
            None => vec![0.0; var.elem_count()],
        };
        let base = var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
        let shape = var.shape().clone();
        for (i, &a) in analytic.iter().enumerate() {
            let eval = |delta: f64| -> Result<f64> {
                let mut v = base.clone();
                v[i] += delta;
                let mut args = tensors.clone();
                args[k] = Tensor::from_vec(v, shape.clone(), var.device())?;
                f(&args)?.sum_all()?.to_scalar::<f64>()
            };
            let numeric = (eval(step)? - eval(-step)?) / (2.0 * step);
            let abs = (a - numeric).abs();
            let rel = abs / a.abs().max(numeric.abs()).max(1e-3);
            report.max_abs_error = report.max_abs_error.max(abs);
            report.max_rel_error = report.max_rel_error.max(rel);
            report.checked += 1;
        }
    }
    Ok(report)
}
