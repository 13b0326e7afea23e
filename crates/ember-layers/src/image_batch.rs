//! The input check shared by the layers that work on batches of images.

use candle_core::{Result, Tensor};

/// Fails, naming `layer`, unless `xs` is a batch of images `(batch, channels, height, width)`.
pub(crate) fn check_image_batch(layer: &str, xs: &Tensor) -> Result<()> {
    if xs.rank() != 4 {
        candle_core::bail!("{layer}: expected input (batch, channels, height, width), got {:?}", xs.dims())
    }
    Ok(())
}
