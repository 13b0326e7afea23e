//! Occlusion: random erasing (torchvision's `RandomErasing`) and cutout (DeVries & Taylor,
//! 2017, "Improved Regularization of Convolutional Neural Networks with Cutout").

use rand::rngs::StdRng;
use rand::Rng;

use crate::error::check_probability;
use crate::field_setters::{field_setters, positive_range_setters};
use crate::rng::random_box_sides;
use crate::sample::{channels, Image, Sample, SamplePixel};
use crate::{Error, Result, Transform};

/// With probability `p`, fills a random rectangle with `value`: area a fraction in `scale`
/// (default `(0.02, 0.33)`) of the image, aspect ratio log-uniform in `ratio` (default
/// `(0.3, 3.3)`), ten tries as torchvision, else nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomErasing {
    p: f64,
    scale: (f64, f64),
    ratio: (f64, f64),
    value: f32,
}

impl RandomErasing {
    /// Erases with probability `p`, torchvision's default ranges, value 0.
    pub fn new(p: f64) -> Result<Self> {
        Ok(Self { p: check_probability("random erasing", p)?, scale: (0.02, 0.33), ratio: (0.3, 3.3), value: 0.0 })
    }

    positive_range_setters! {
        "random erasing";
        /// Area fraction range, `0 < low <= high <= 1`.
        with_scale(scale);
        /// Aspect-ratio range, `0 < low <= high`.
        with_ratio(ratio);
    }

    field_setters! {
        /// The fill value, in the image's units.
        with_value(value: f32);
    }
}

/// Fills the rectangle `[left, left + w) x [top, top + h)` (clipped) with `value`.
fn fill_rect<P: SamplePixel>(image: &mut Image<P>, left: u32, top: u32, w: u32, h: u32, value: f32) {
    let c = channels::<P>();
    let (iw, ih) = image.dimensions();
    let (right, bottom) = ((left + w).min(iw) as usize, (top + h).min(ih) as usize);
    let v = <P::Subpixel as Sample>::from_f32(value);
    let row = iw as usize * c;
    let data: &mut [P::Subpixel] = image;
    for y in top as usize..bottom {
        data[y * row + left as usize * c..y * row + right * c].fill(v);
    }
}

impl<P: SamplePixel> Transform<Image<P>> for RandomErasing {
    fn apply(&self, mut image: Image<P>, rng: &mut StdRng) -> Result<Image<P>> {
        if rng.random::<f64>() >= self.p {
            return Ok(image);
        }
        let (iw, ih) = image.dimensions();
        let area = iw as f64 * ih as f64;
        for _ in 0..10 {
            let (h, w) = random_box_sides(rng, area, self.scale, self.ratio);
            if !(h < ih && w < iw) {
                continue;
            }
            let top = rng.random_range(0..=ih - h);
            let left = rng.random_range(0..=iw - w);
            fill_rect(&mut image, left, top, w, h, self.value);
            break;
        }
        Ok(image)
    }
}

/// Fills a `size x size` square centred at a uniformly random pixel (clipped at the border)
/// with zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutout {
    size: u32,
}

impl Cutout {
    /// A square of side `size > 0`.
    pub fn new(size: u32) -> Result<Self> {
        if size == 0 {
            return Err(Error::invalid("cutout", "size", size, "a positive side length"));
        }
        Ok(Self { size })
    }
}

impl<P: SamplePixel> Transform<Image<P>> for Cutout {
    fn apply(&self, mut image: Image<P>, rng: &mut StdRng) -> Result<Image<P>> {
        let (iw, ih) = image.dimensions();
        if iw == 0 || ih == 0 {
            return Ok(image);
        }
        let cx = rng.random_range(0..iw) as i64;
        let cy = rng.random_range(0..ih) as i64;
        let half = (self.size / 2) as i64;
        let (x0, y0) = ((cx - half).max(0), (cy - half).max(0));
        let (x1, y1) = ((cx - half + self.size as i64).min(iw as i64), (cy - half + self.size as i64).min(ih as i64));
        fill_rect(&mut image, x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32, 0.0);
        Ok(image)
    }
}
