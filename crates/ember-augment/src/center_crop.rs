//! Centre crop (torchvision's `CenterCrop`).

use rand::rngs::StdRng;

use crate::error::check_size;
use crate::sample::{Image, SamplePixel};
use crate::window::{copy_window, PaddingMode};
use crate::{Result, Transform};

/// Cuts the central `width x height` window. Where the image is smaller than the crop, it is
/// zero-padded around, as torchvision does; offsets round as torchvision's
/// `int(round((size - crop) / 2))` (half to even).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CenterCrop {
    width: u32,
    height: u32,
}

impl CenterCrop {
    /// A `width x height` centre crop; both must be positive.
    pub fn new(width: u32, height: u32) -> Result<Self> {
        check_size("center crop", width, height)?;
        Ok(Self { width, height })
    }
}

/// Offset of a centred window of length `crop` on an axis of length `size` (negative: padding).
fn centred_offset(size: u32, crop: u32) -> i64 {
    if crop > size {
        // torchvision pads (crop - size) // 2 before the image.
        return -(((crop - size) / 2) as i64);
    }
    let d = size - crop;
    let half = d / 2;
    // round(d / 2) with ties to even.
    if d % 2 == 1 && half % 2 == 1 {
        half as i64 + 1
    } else {
        half as i64
    }
}

impl<P: SamplePixel> Transform<Image<P>> for CenterCrop {
    fn apply(&self, image: Image<P>, _rng: &mut StdRng) -> Result<Image<P>> {
        let (w, h) = image.dimensions();
        let (left, top) = (centred_offset(w, self.width), centred_offset(h, self.height));
        Ok(copy_window(&image, left, top, self.width, self.height, PaddingMode::Zero))
    }
}
