//! Random crop with padding (torchvision's `RandomCrop(size, padding, padding_mode=...)`).

use rand::rngs::StdRng;
use rand::Rng;

use crate::field_setters::field_setters;
use crate::sample::{Image, SamplePixel};
use crate::window::{copy_window, PaddingMode};
use crate::{Error, Result, Transform};

/// Pads the image with `padding` pixels on every side (zero by default, or by a
/// [`PaddingMode`]), then cuts a `width x height` window at a uniformly random position.
/// With padding 2 on a 28x28 digit, this shifts the digit by up to 2 pixels in each direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomCrop {
    width: u32,
    height: u32,
    padding: u32,
    mode: PaddingMode,
}

impl RandomCrop {
    /// A `width x height` crop without padding.
    pub fn new(width: u32, height: u32) -> Self {
        Self { width, height, padding: 0, mode: PaddingMode::Zero }
    }

    field_setters! {
        /// Adds `padding` pixels on every side before cropping.
        with_padding(padding: u32);
        /// How the padding pixels are made (default [`PaddingMode::Zero`]).
        with_padding_mode(mode: PaddingMode);
    }
}

impl<P: SamplePixel> Transform<Image<P>> for RandomCrop {
    fn apply(&self, image: Image<P>, rng: &mut StdRng) -> Result<Image<P>> {
        let (w, h) = image.dimensions();
        let (padded_w, padded_h) = (w + 2 * self.padding, h + 2 * self.padding);
        if self.width > padded_w || self.height > padded_h {
            return Err(Error::CropTooLarge { crop_w: self.width, crop_h: self.height, padded_w, padded_h });
        }
        let left = rng.random_range(0..=padded_w - self.width);
        let top = rng.random_range(0..=padded_h - self.height);
        if self.padding == 0 && (left, top) == (0, 0) && (self.width, self.height) == (w, h) {
            return Ok(image);
        }
        // Output pixel (x, y) is padded pixel (left + x, top + y), i.e. source pixel
        // (left + x - padding, top + y - padding).
        let pad = self.padding as i64;
        Ok(copy_window(&image, left as i64 - pad, top as i64 - pad, self.width, self.height, self.mode))
    }
}
