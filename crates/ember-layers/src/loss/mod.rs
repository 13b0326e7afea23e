//! Loss functions, one per file, each with PyTorch's semantics and a [`Reduction`].

mod bce_with_logits;
mod cross_entropy;
mod huber;
mod kl_div;
mod l1;
mod mse;
mod nll;

pub use bce_with_logits::{binary_cross_entropy_with_logits, BceWithLogitsConfig};
pub use cross_entropy::{cross_entropy, cross_entropy_with, CrossEntropyConfig};
pub use huber::{huber, smooth_l1};
pub use kl_div::kl_div;
pub use l1::l1;
pub use mse::mse;
pub use nll::{nll, NllConfig};

use candle_core::{Result, Tensor};

/// How per-element losses become the returned value (PyTorch's `reduction`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reduction {
    /// No reduction: the per-element (or per-sample) losses.
    None,
    /// The mean (for class-weighted losses: the weighted mean, as PyTorch).
    #[default]
    Mean,
    /// The sum.
    Sum,
    /// The sum divided by the batch size (the first dimension); PyTorch's `kl_div` default for
    /// the mathematically correct KL divergence.
    BatchMean,
}

/// Applies `reduction` to element-wise losses.
pub(crate) fn reduce(losses: &Tensor, reduction: Reduction) -> Result<Tensor> {
    match reduction {
        Reduction::None => Ok(losses.clone()),
        Reduction::Mean => losses.mean_all(),
        Reduction::Sum => losses.sum_all(),
        Reduction::BatchMean => {
            let b = losses.dims().first().copied().unwrap_or(1).max(1);
            losses.sum_all()? / b as f64
        }
    }
}

/// Fails unless `a` and `b` have the same shape, naming the loss.
pub(crate) fn same_shape(loss: &str, input: &Tensor, target: &Tensor) -> Result<()> {
    if input.shape() != target.shape() {
        candle_core::bail!("{loss}: input shape {:?} but target shape {:?}", input.dims(), target.dims())
    }
    Ok(())
}
