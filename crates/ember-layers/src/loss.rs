//! Loss functions.

use candle_core::{DType, Result, Tensor};

/// Mean cross-entropy between `logits` and integer class `targets`.
///
/// # Shapes
/// - `logits`: `(b, classes)`, unnormalised scores
/// - `targets`: `(b,)`, class indices (u8, u32 or i64)
/// - output: scalar
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (b, classes) = match logits.dims() {
        [b, c] => (*b, *c),
        dims => candle_core::bail!("cross_entropy: expected logits (batch, classes), got {dims:?}"),
    };
    if targets.dims() != [b] {
        candle_core::bail!("cross_entropy: {b} logits rows but targets have shape {:?}", targets.dims())
    }
    let targets = targets.to_dtype(DType::U32)?;
    let max_target = targets.max(0)?.to_scalar::<u32>()? as usize;
    if b > 0 && max_target >= classes {
        candle_core::bail!("cross_entropy: target class {max_target} out of range for {classes} classes")
    }
    let log_probs = candle_nn::ops::log_softmax(logits, 1)?;
    log_probs.gather(&targets.unsqueeze(1)?, 1)?.neg()?.mean_all()
}
