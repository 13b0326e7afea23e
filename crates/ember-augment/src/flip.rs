//! Horizontal and vertical flips, each applied with a probability (torchvision's
//! `RandomHorizontalFlip(p)` / `RandomVerticalFlip(p)`), in place.

use image::Pixel;
use rand::rngs::StdRng;
use rand::Rng;

use crate::error::check_probability;
use crate::sample::{channels, Image};
use crate::{Result, Transform};

/// Mirrors the image left-right with probability `p` (1 always flips). One uniform draw per
/// image whatever `p`, so the stream stays aligned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomHorizontalFlip {
    p: f64,
}

/// Mirrors the image top-bottom with probability `p` (1 always flips).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomVerticalFlip {
    p: f64,
}

impl RandomHorizontalFlip {
    /// Flips with probability `p` in `[0, 1]`.
    pub fn new(p: f64) -> Result<Self> {
        Ok(Self { p: check_probability("horizontal flip", p)? })
    }
}

impl RandomVerticalFlip {
    /// Flips with probability `p` in `[0, 1]`.
    pub fn new(p: f64) -> Result<Self> {
        Ok(Self { p: check_probability("vertical flip", p)? })
    }
}

/// Mirrors `image` left-right in place.
pub fn flip_horizontal_in_place<P: Pixel>(image: &mut Image<P>) {
    let c = channels::<P>();
    let row_len = image.width() as usize * c;
    let data: &mut [P::Subpixel] = image;
    for row in data.chunks_exact_mut(row_len.max(1)) {
        // Reversing the row reverses the channel order too; undo that per pixel.
        row.reverse();
        if c > 1 {
            for px in row.chunks_exact_mut(c) {
                px.reverse();
            }
        }
    }
}

/// Mirrors `image` top-bottom in place.
pub fn flip_vertical_in_place<P: Pixel>(image: &mut Image<P>) {
    let row_len = image.width() as usize * channels::<P>();
    let h = image.height() as usize;
    let data: &mut [P::Subpixel] = image;
    for y in 0..h / 2 {
        let (upper, lower) = data.split_at_mut((h - 1 - y) * row_len);
        upper[y * row_len..(y + 1) * row_len].swap_with_slice(&mut lower[..row_len]);
    }
}

impl<P: Pixel> Transform<Image<P>> for RandomHorizontalFlip {
    fn apply(&self, mut image: Image<P>, rng: &mut StdRng) -> Result<Image<P>> {
        if rng.random::<f64>() < self.p {
            flip_horizontal_in_place(&mut image);
        }
        Ok(image)
    }
}

impl<P: Pixel> Transform<Image<P>> for RandomVerticalFlip {
    fn apply(&self, mut image: Image<P>, rng: &mut StdRng) -> Result<Image<P>> {
        if rng.random::<f64>() < self.p {
            flip_vertical_in_place(&mut image);
        }
        Ok(image)
    }
}
