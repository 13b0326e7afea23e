//! Per-channel normalisation (torchvision's `Normalize(mean, std)`) and its inverse.

use image::Pixel;
use rand::rngs::StdRng;

use crate::sample::{channels, Image};
use crate::{Error, Result, Transform};

/// `(v - mean[c]) / std[c]` for every value of channel `c`, on `f32` images (scale `u8` images
/// with [`ToTensor`](crate::ToTensor), which normalises in the same pass). One mean and std
/// serve every channel; otherwise there must be one per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    mean: Vec<f32>,
    /// `1 / std`, multiplied instead of dividing.
    inv_std: Vec<f32>,
}

impl Normalize {
    /// Per-channel `mean` and `std` of equal, non-zero length; every std finite and non-zero.
    pub fn new(mean: &[f32], std: &[f32]) -> Result<Self> {
        if mean.is_empty() || mean.len() != std.len() {
            return Err(Error::invalid(
                "normalize",
                "mean/std",
                format!("{} means, {} stds", mean.len(), std.len()),
                "as many stds as means, at least one",
            ));
        }
        if let Some(&bad) = std.iter().find(|s| !(s.is_finite() && **s != 0.0)) {
            return Err(Error::invalid("normalize", "std", bad, "finite and non-zero"));
        }
        Ok(Self { mean: mean.to_vec(), inv_std: std.iter().map(|s| 1.0 / s).collect() })
    }

    /// ImageNet's statistics, the usual choice for pretrained models.
    pub fn imagenet() -> Self {
        Self { mean: vec![0.485, 0.456, 0.406], inv_std: [0.229f32, 0.224, 0.225].iter().map(|s| 1.0 / s).collect() }
    }

    /// The transform that undoes this one: `v * std + mean`.
    pub fn inverse(&self) -> Self {
        Self {
            mean: self.mean.iter().zip(&self.inv_std).map(|(m, is)| -m * is).collect(),
            inv_std: self.inv_std.iter().map(|is| 1.0 / is).collect(),
        }
    }

    /// The mean and `1 / std` of each of `c` channels.
    pub(crate) fn per_channel(&self, c: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        match self.mean.len() {
            1 => Ok((vec![self.mean[0]; c], vec![self.inv_std[0]; c])),
            n if n == c => Ok((self.mean.clone(), self.inv_std.clone())),
            n => Err(Error::invalid("normalize", "channels", n, "one mean/std, or one per image channel")),
        }
    }
}

impl<P> Transform<Image<P>> for Normalize
where
    P: Pixel<Subpixel = f32>,
{
    fn apply(&self, mut image: Image<P>, _rng: &mut StdRng) -> Result<Image<P>> {
        let c = channels::<P>();
        let (mean, inv_std) = self.per_channel(c)?;
        let data: &mut [f32] = &mut image;
        for px in data.chunks_exact_mut(c) {
            for ((v, m), s) in px.iter_mut().zip(&mean).zip(&inv_std) {
                *v = (*v - m) * s;
            }
        }
        Ok(image)
    }
}
