//! Kullback–Leibler divergence.

use candle_core::{Result, Tensor};

use super::{reduce, same_shape, Reduction};

/// KL divergence between a target distribution and the *log*-probabilities `input`
/// (PyTorch's `F.kl_div`): `target * (log target - input)`, with `0 log 0 = 0`; with
/// `log_target` the target is given as log-probabilities too. Use [`Reduction::BatchMean`] for
/// the true KL divergence per sample.
///
/// # Shapes
/// - `input`, `target`: the same shape
/// - output: scalar, or the input's shape with [`Reduction::None`]
pub fn kl_div(input: &Tensor, target: &Tensor, log_target: bool, reduction: Reduction) -> Result<Tensor> {
    same_shape("kl_div", input, target)?;
    let losses = if log_target {
        (target.exp()? * (target - input)?)?
    } else {
        // `max(t, tiny)` keeps log finite, so that 0 * log(tiny) = 0 where the target is 0.
        let xlogx = (target * target.maximum(1e-30)?.log()?)?;
        (xlogx - (target * input)?)?
    };
    reduce(&losses, reduction)
}
