//! Colour jitter (torchvision's `ColorJitter`) and grayscale.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::adjust;
use crate::error::{check_non_negative, check_probability};
use crate::rng::uniform;
use crate::sample::{channels, Image, SamplePixel};
use crate::{Error, Result, Transform};

/// Random brightness, contrast, saturation and hue changes, in a random order, as torchvision's
/// `ColorJitter(brightness, contrast, saturation, hue)`: the first three factors are uniform in
/// `[max(0, 1 - x), 1 + x]`, the hue shift uniform in `[-hue, hue]` turns. Saturation and hue
/// leave grey images alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorJitter {
    brightness: f64,
    contrast: f64,
    saturation: f64,
    hue: f64,
}

impl ColorJitter {
    /// Strengths `>= 0`; `hue` at most 0.5.
    pub fn new(brightness: f64, contrast: f64, saturation: f64, hue: f64) -> Result<Self> {
        for (name, v) in [("brightness", brightness), ("contrast", contrast), ("saturation", saturation)] {
            check_non_negative("color jitter", name, v)?;
        }
        if !(0.0..=0.5).contains(&hue) {
            return Err(Error::invalid("color jitter", "hue", hue, "a number in [0, 0.5]"));
        }
        Ok(Self { brightness, contrast, saturation, hue })
    }
}

impl<P: SamplePixel> Transform<Image<P>> for ColorJitter {
    fn apply(&self, mut image: Image<P>, rng: &mut StdRng) -> Result<Image<P>> {
        let c = channels::<P>();
        let mut order = [0usize, 1, 2, 3];
        order.shuffle(rng);
        let factor = |rng: &mut StdRng, x: f64| uniform(rng, (1.0 - x).max(0.0), 1.0 + x) as f32;
        let b = factor(rng, self.brightness);
        let ct = factor(rng, self.contrast);
        let s = factor(rng, self.saturation);
        let h = uniform(rng, -self.hue, self.hue) as f32;
        let data: &mut [P::Subpixel] = &mut image;
        for op in order {
            match op {
                0 if self.brightness > 0.0 => adjust::brightness(data, c, b),
                1 if self.contrast > 0.0 => adjust::contrast(data, c, ct),
                2 if self.saturation > 0.0 => adjust::saturation(data, c, s),
                3 if self.hue > 0.0 => adjust::hue(data, c, h),
                _ => {}
            }
        }
        Ok(image)
    }
}

/// Replaces RGB by its luma in all three channels, with probability `p` (torchvision's
/// `RandomGrayscale(p)`; `p = 1` is `Grayscale(num_output_channels=3)`). Grey images pass
/// through.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomGrayscale {
    p: f64,
}

impl RandomGrayscale {
    /// Converts with probability `p` in `[0, 1]`.
    pub fn new(p: f64) -> Result<Self> {
        Ok(Self { p: check_probability("grayscale", p)? })
    }
}

impl<P: SamplePixel> Transform<Image<P>> for RandomGrayscale {
    fn apply(&self, mut image: Image<P>, rng: &mut StdRng) -> Result<Image<P>> {
        if rng.random::<f64>() < self.p {
            adjust::grayscale(&mut image, channels::<P>());
        }
        Ok(image)
    }
}
