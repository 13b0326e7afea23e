//! Random crop with zero padding (torchvision's `RandomCrop(size, padding)`).

use image::{ImageBuffer, Pixel};
use rand::rngs::StdRng;
use rand::Rng;

use crate::{Error, Result, Transform};

/// Pads the image with `padding` zero pixels on every side, then cuts a `width x height`
/// window at a uniformly random position. With padding 2 on a 28x28 digit, this shifts the
/// digit by up to 2 pixels in each direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomCrop {
    width: u32,
    height: u32,
    padding: u32,
}

impl RandomCrop {
    /// A `width x height` crop without padding.
    pub fn new(width: u32, height: u32) -> Self {
        Self { width, height, padding: 0 }
    }

    /// Adds `padding` zero pixels on every side before cropping.
    pub fn with_padding(mut self, padding: u32) -> Self {
        self.padding = padding;
        self
    }
}

impl<P> Transform<ImageBuffer<P, Vec<P::Subpixel>>> for RandomCrop
where
    P: Pixel + Send + Sync,
    P::Subpixel: Send + Sync,
{
    fn apply(
        &self,
        image: ImageBuffer<P, Vec<P::Subpixel>>,
        rng: &mut StdRng,
    ) -> Result<ImageBuffer<P, Vec<P::Subpixel>>> {
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
        // (left + x - padding, top + y - padding) when that lies inside the image.
        let mut out = ImageBuffer::new(self.width, self.height);
        let pad = self.padding as i64;
        for y in 0..self.height {
            let sy = top as i64 + y as i64 - pad;
            if sy < 0 || sy >= h as i64 {
                continue;
            }
            for x in 0..self.width {
                let sx = left as i64 + x as i64 - pad;
                if sx >= 0 && sx < w as i64 {
                    out.put_pixel(x, y, *image.get_pixel(sx as u32, sy as u32));
                }
            }
        }
        Ok(out)
    }
}
