//! Gaussian blur (torchvision's `GaussianBlur(kernel_size, sigma)`).

use rand::rngs::StdRng;

use crate::field_setters::positive_range_setters;
use crate::rng::uniform;
use crate::sample::{channels, Image, Sample, SamplePixel};
use crate::window::PaddingMode;
use crate::{Error, Result, Transform};

/// Blurs with a separable Gaussian of odd `kernel_size` and sigma uniform in a range (default
/// torchvision's `(0.1, 2.0)`), reflecting at the border. The kernel is torchvision's: the
/// Gaussian sampled at `linspace(-(k-1)/2, (k-1)/2, k)`, normalised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaussianBlur {
    kernel_size: u32,
    sigma: (f64, f64),
}

impl GaussianBlur {
    /// An odd, positive `kernel_size`.
    pub fn new(kernel_size: u32) -> Result<Self> {
        if kernel_size.is_multiple_of(2) {
            return Err(Error::invalid("gaussian blur", "kernel_size", kernel_size, "an odd positive number"));
        }
        Ok(Self { kernel_size, sigma: (0.1, 2.0) })
    }

    positive_range_setters! {
        "gaussian blur";
        /// Sigma uniform in `[low, high]`, `0 < low`.
        with_sigma(sigma);
    }
}

fn kernel(size: u32, sigma: f64) -> Vec<f32> {
    let half = (size as f64 - 1.0) * 0.5;
    let raw: Vec<f64> = (0..size).map(|i| (-0.5 * ((i as f64 - half) / sigma).powi(2)).exp()).collect();
    let total: f64 = raw.iter().sum();
    raw.iter().map(|v| (v / total) as f32).collect()
}

impl<P: SamplePixel> Transform<Image<P>> for GaussianBlur {
    fn apply(&self, mut image: Image<P>, rng: &mut StdRng) -> Result<Image<P>> {
        let sigma = uniform(rng, self.sigma.0, self.sigma.1);
        let (w, h) = (image.width() as usize, image.height() as usize);
        if w == 0 || h == 0 || self.kernel_size == 1 {
            return Ok(image);
        }
        let c = channels::<P>();
        let k = kernel(self.kernel_size, sigma);
        let r = (self.kernel_size / 2) as i64;
        let xs: Vec<usize> =
            (-r..w as i64 + r).map(|i| PaddingMode::Reflect.source_index(i, w as i64).unwrap_or(0)).collect();
        let ys: Vec<usize> =
            (-r..h as i64 + r).map(|i| PaddingMode::Reflect.source_index(i, h as i64).unwrap_or(0)).collect();
        let row = w * c;
        let data: &mut [P::Subpixel] = &mut image;
        // Horizontal pass into f32, then vertical pass back into the image.
        let mut tmp = vec![0f32; h * row];
        for (y, t) in tmp.chunks_exact_mut(row).enumerate() {
            let src = &data[y * row..(y + 1) * row];
            for x in 0..w {
                for ch in 0..c {
                    t[x * c + ch] = k.iter().zip(&xs[x..]).map(|(wt, &sx)| wt * src[sx * c + ch].as_f32()).sum();
                }
            }
        }
        let mut acc = vec![0f32; row];
        for y in 0..h {
            acc.fill(0.0);
            for (wt, &sy) in k.iter().zip(&ys[y..]) {
                for (a, &t) in acc.iter_mut().zip(&tmp[sy * row..(sy + 1) * row]) {
                    *a += wt * t;
                }
            }
            for (o, &a) in data[y * row..(y + 1) * row].iter_mut().zip(&acc) {
                *o = <P::Subpixel as Sample>::from_f32(a);
            }
        }
        Ok(image)
    }
}
