//! Random resized crop (torchvision's `RandomResizedCrop`): a random area and aspect ratio,
//! resized to a fixed size, in one resampling pass.

use rand::rngs::StdRng;
use rand::Rng;

use crate::error::{check_non_empty, check_size};
use crate::field_setters::{field_setters, positive_range_setters};
use crate::resize::{resize_window, Interpolation, Window};
use crate::rng::random_box_sides;
use crate::sample::{Image, SamplePixel};
use crate::{Result, Transform};

/// Crops a window covering a random fraction of the area (`scale`, default `(0.08, 1.0)`) with a
/// random aspect ratio (`ratio`, log-uniform, default `(3/4, 4/3)`), then resizes it to
/// `width x height` (bilinear, antialiased). The window is drawn as torchvision draws it: ten
/// tries, then a centre crop clamped to the ratio range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomResizedCrop {
    width: u32,
    height: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
    interpolation: Interpolation,
    antialias: bool,
}

impl RandomResizedCrop {
    /// Output `width x height`, torchvision's default scale and ratio ranges.
    pub fn new(width: u32, height: u32) -> Result<Self> {
        check_size("random resized crop", width, height)?;
        Ok(Self {
            width,
            height,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            interpolation: Interpolation::Bilinear,
            antialias: true,
        })
    }

    positive_range_setters! {
        "random resized crop";
        /// The range of the crop's area as a fraction of the image's; `0 < low <= high`.
        with_scale(scale);
        /// The range of the crop's aspect ratio (width / height); `0 < low <= high`.
        with_ratio(ratio);
    }

    field_setters! {
        /// The interpolation of the resize (default bilinear).
        with_interpolation(interpolation: Interpolation);
    }

    /// The crop window for an image of `width x height` (torchvision's `get_params`).
    fn window(&self, width: u32, height: u32, rng: &mut StdRng) -> Window {
        let area = (width as f64) * (height as f64);
        for _ in 0..10 {
            let (w, h) = random_box_sides(rng, area, self.scale, self.ratio);
            if 0 < w && w <= width && 0 < h && h <= height {
                let top = rng.random_range(0..=height - h);
                let left = rng.random_range(0..=width - w);
                return Window { left, top, width: w, height: h };
            }
        }
        let in_ratio = width as f64 / height as f64;
        let (w, h) = if in_ratio < self.ratio.0 {
            (width, ((width as f64 / self.ratio.0).round_ties_even() as u32).clamp(1, height))
        } else if in_ratio > self.ratio.1 {
            (((height as f64 * self.ratio.1).round_ties_even() as u32).clamp(1, width), height)
        } else {
            (width, height)
        };
        Window { left: (width - w) / 2, top: (height - h) / 2, width: w, height: h }
    }
}

impl<P: SamplePixel> Transform<Image<P>> for RandomResizedCrop {
    fn apply(&self, image: Image<P>, rng: &mut StdRng) -> Result<Image<P>> {
        let (w, h) = image.dimensions();
        check_non_empty("random resized crop", w, h)?;
        let window = self.window(w, h, rng);
        Ok(resize_window(&image, window, self.width, self.height, self.interpolation, self.antialias))
    }
}
