//! TrivialAugment (Müller & Hutter, 2021, "TrivialAugment: Tuning-free Yet State-of-the-Art
//! Data Augmentation"), as torchvision's `TrivialAugmentWide`: one op, one strength, per image.

use rand::rngs::StdRng;
use rand::Rng;

use crate::adjust;
use crate::resize::Interpolation;
use crate::sample::{channels, Image, Sample, SamplePixel};
use crate::{Affine, Result, Transform};

/// The ops TrivialAugmentWide draws from, with their magnitude at the strongest of 31 bins and
/// whether the sign is random.
const OPS: [(Op, f64, bool); 14] = [
    (Op::Identity, 0.0, false),
    (Op::ShearX, 0.99, true),
    (Op::ShearY, 0.99, true),
    (Op::TranslateX, 32.0, true),
    (Op::TranslateY, 32.0, true),
    (Op::Rotate, 135.0, true),
    (Op::Brightness, 0.99, true),
    (Op::Color, 0.99, true),
    (Op::Contrast, 0.99, true),
    (Op::Sharpness, 0.99, true),
    (Op::Posterize, 0.0, false),
    (Op::Solarize, 0.0, false),
    (Op::AutoContrast, 0.0, false),
    (Op::Equalize, 0.0, false),
];

const BINS: usize = 31;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Identity,
    ShearX,
    ShearY,
    TranslateX,
    TranslateY,
    Rotate,
    Brightness,
    Color,
    Contrast,
    Sharpness,
    Posterize,
    Solarize,
    AutoContrast,
    Equalize,
}

impl Op {
    fn has_magnitude(self) -> bool {
        !matches!(self, Op::Identity | Op::AutoContrast | Op::Equalize)
    }
}

/// Picks one of 14 ops (identity, shear x/y, translate x/y, rotate, brightness, colour,
/// contrast, sharpness, posterize, solarize, autocontrast, equalize) uniformly, and a strength
/// uniformly from 31 bins of torchvision's "wide" ranges, with a random sign where it applies.
/// Geometric ops use nearest interpolation and fill 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrivialAugmentWide;

impl TrivialAugmentWide {
    /// The op set and ranges of torchvision's `TrivialAugmentWide`.
    pub fn new() -> Self {
        Self
    }
}

impl<P: SamplePixel> Transform<Image<P>> for TrivialAugmentWide {
    fn apply(&self, mut image: Image<P>, rng: &mut StdRng) -> Result<Image<P>> {
        let (op, top, signed) = OPS[rng.random_range(0..OPS.len())];
        let bin = if op.has_magnitude() { rng.random_range(0..BINS) } else { 0 };
        let fraction = bin as f64 / (BINS - 1) as f64;
        let mut magnitude = top * fraction;
        if signed && rng.random_range(0..2) == 1 {
            magnitude = -magnitude;
        }
        let c = channels::<P>();
        let width = image.width() as usize;
        let max = <P::Subpixel as Sample>::MAX;
        let warp = |affine: Affine, image: Image<P>, rng: &mut StdRng| {
            affine.with_interpolation(Interpolation::Nearest).apply(image, rng)
        };
        let shear = magnitude.atan().to_degrees();
        match op {
            Op::Identity => Ok(image),
            Op::ShearX => warp(Affine::new(0.0, (0.0, 0.0), 1.0, (shear, 0.0))?.with_center(0.0, 0.0), image, rng),
            Op::ShearY => warp(Affine::new(0.0, (0.0, 0.0), 1.0, (0.0, shear))?.with_center(0.0, 0.0), image, rng),
            Op::TranslateX => warp(Affine::new(0.0, (magnitude.trunc(), 0.0), 1.0, (0.0, 0.0))?, image, rng),
            Op::TranslateY => warp(Affine::new(0.0, (0.0, magnitude.trunc()), 1.0, (0.0, 0.0))?, image, rng),
            Op::Rotate => warp(Affine::rotation(magnitude), image, rng),
            _ => {
                let data: &mut [P::Subpixel] = &mut image;
                let factor = 1.0 + magnitude as f32;
                match op {
                    Op::Brightness => adjust::brightness(data, c, factor),
                    Op::Color => adjust::saturation(data, c, factor),
                    Op::Contrast => adjust::contrast(data, c, factor),
                    Op::Sharpness => adjust::sharpness(data, c, width, factor),
                    // 8 - round(bin / 5): 8 bits down to 2.
                    Op::Posterize => adjust::posterize(data, c, 8 - (bin as f64 / 5.0).round_ties_even() as u32),
                    // Threshold from white down to 0.
                    Op::Solarize => adjust::solarize(data, c, max * (1.0 - fraction) as f32),
                    Op::AutoContrast => adjust::autocontrast(data, c),
                    _ => adjust::equalize(data, c),
                }
                Ok(image)
            }
        }
    }
}
