//! HWC image to CHW `f32` (torchvision's `ToTensor` / `ToDtype(float32, scale=True)`), with
//! optional normalisation in the same pass.

use candle_core::{Device, Tensor};

use crate::sample::{channels, Image, Sample, SamplePixel};
use crate::{Normalize, Result};

/// Converts an image to channel-major `f32` values scaled to `[0, 1]` (`u8` divided by 255),
/// then normalised if a [`Normalize`] is set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ToTensor {
    normalize: Option<Normalize>,
}

impl ToTensor {
    /// Scaling only.
    pub fn new() -> Self {
        Self { normalize: None }
    }

    /// Normalises after scaling.
    pub fn with_normalize(mut self, normalize: Normalize) -> Self {
        self.normalize = Some(normalize);
        self
    }

    /// Appends the image's values to `out` in `(c, h, w)` order: the loader's path, which
    /// reuses one batch buffer.
    pub fn extend_chw<P: SamplePixel>(&self, image: &Image<P>, out: &mut Vec<f32>) -> Result<()> {
        let c = channels::<P>();
        let max = <P::Subpixel as Sample>::MAX;
        let (mean, inv_std) = match &self.normalize {
            Some(n) => n.per_channel(c)?,
            None => (vec![0.0; c], vec![1.0; c]),
        };
        let src: &[P::Subpixel] = image.as_raw();
        let n = src.len() / c.max(1);
        let start = out.len();
        out.resize(start + src.len(), 0.0);
        let dst = &mut out[start..];
        // (v / max - mean) / std, as torchvision's ToDtype(scale=True) then Normalize.
        if c == 1 {
            let (m, s) = (mean[0], inv_std[0]);
            for (o, v) in dst.iter_mut().zip(src) {
                *o = (v.as_f32() / max - m) * s;
            }
            return Ok(());
        }
        for ch in 0..c {
            let (m, s) = (mean[ch], inv_std[ch]);
            for (o, px) in dst[ch * n..(ch + 1) * n].iter_mut().zip(src.chunks_exact(c)) {
                *o = (px[ch].as_f32() / max - m) * s;
            }
        }
        Ok(())
    }

    /// The image as `(c, h, w)` values.
    pub fn chw<P: SamplePixel>(&self, image: &Image<P>) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(image.as_raw().len());
        self.extend_chw(image, &mut out)?;
        Ok(out)
    }

    /// The image as a candle tensor.
    ///
    /// # Shapes
    /// - output: `(c, h, w)`, `f32`
    pub fn tensor<P: SamplePixel>(&self, image: &Image<P>, device: &Device) -> Result<Tensor> {
        let (w, h) = image.dimensions();
        let values = self.chw(image)?;
        Ok(Tensor::from_vec(values, (channels::<P>(), h as usize, w as usize), device)?)
    }
}
