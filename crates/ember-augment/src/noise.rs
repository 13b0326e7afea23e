//! Noise injection: additive Gaussian (torchvision v2's `GaussianNoise`) and salt-and-pepper.

use rand::rngs::StdRng;
use rand::Rng;

use crate::error::check_non_negative;
use crate::field_setters::field_setters;
use crate::rng::normal_pair;
use crate::sample::{channels, Image, Sample, SamplePixel};
use crate::{Error, Result, Transform};

/// Adds `mean + std * N(0, 1)` to every value, `mean` and `std` in units of white (0.1 is 25.5
/// grey levels on `u8`), then clamps to the valid range (`u8` always; `f32` unless
/// [`GaussianNoise::without_clip`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaussianNoise {
    mean: f32,
    std: f32,
    clip: bool,
}

impl GaussianNoise {
    /// Zero-mean noise of standard deviation `std >= 0`.
    pub fn new(std: f32) -> Result<Self> {
        check_non_negative("gaussian noise", "std", std)?;
        Ok(Self { mean: 0.0, std, clip: true })
    }

    field_setters! {
        /// Adds `mean` as well (in units of white).
        with_mean(mean: f32);
    }

    /// Leaves `f32` values outside `[0, 1]` as they are.
    pub fn without_clip(mut self) -> Self {
        self.clip = false;
        self
    }
}

impl<P: SamplePixel> Transform<Image<P>> for GaussianNoise {
    fn apply(&self, mut image: Image<P>, rng: &mut StdRng) -> Result<Image<P>> {
        let max = <P::Subpixel as Sample>::MAX;
        let (mean, std) = (self.mean * max, self.std * max);
        let clip = self.clip || max > 1.0;
        let add = |v: &mut P::Subpixel, n: f64| {
            let x = v.as_f32() + mean + std * n as f32;
            *v = <P::Subpixel as Sample>::from_f32(if clip { x.clamp(0.0, max) } else { x });
        };
        let data: &mut [P::Subpixel] = &mut image;
        let mut pairs = data.chunks_exact_mut(2);
        for pair in &mut pairs {
            let (a, b) = normal_pair(rng);
            add(&mut pair[0], a);
            add(&mut pair[1], b);
        }
        if let [last] = pairs.into_remainder() {
            add(last, normal_pair(rng).0);
        }
        Ok(image)
    }
}

/// Sets a random `amount` of the pixels (all channels) to black or white, half each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SaltAndPepper {
    amount: f64,
}

impl SaltAndPepper {
    /// A fraction `amount` in `[0, 1]` of the pixels.
    pub fn new(amount: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&amount) {
            return Err(Error::invalid("salt and pepper", "amount", amount, "a fraction in [0, 1]"));
        }
        Ok(Self { amount })
    }
}

impl<P: SamplePixel> Transform<Image<P>> for SaltAndPepper {
    fn apply(&self, mut image: Image<P>, rng: &mut StdRng) -> Result<Image<P>> {
        let c = channels::<P>();
        let (pepper, salt) = (self.amount * 0.5, self.amount);
        let white = <P::Subpixel as Sample>::from_f32(<P::Subpixel as Sample>::MAX);
        let black = <P::Subpixel as Sample>::from_f32(0.0);
        let data: &mut [P::Subpixel] = &mut image;
        for px in data.chunks_exact_mut(c) {
            let u: f64 = rng.random();
            if u < pepper {
                px.fill(black);
            } else if u < salt {
                px.fill(white);
            }
        }
        Ok(image)
    }
}
