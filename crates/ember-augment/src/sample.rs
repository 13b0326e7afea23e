//! The pixel value types transforms work on (`u8` and `f32`), and the buffer aliases they share.

use image::{ImageBuffer, Pixel, Primitive};

/// A pixel value type: `u8` (0..=255) or `f32` (0.0..=1.0 by convention, as torchvision).
///
/// Arithmetic transforms compute in `f32` and convert back with [`Sample::from_f32`], which
/// rounds half to even and saturates for `u8` (as torch's `round_().to(uint8)`), and is the
/// identity for `f32`.
pub trait Sample: Primitive + Send + Sync + 'static {
    /// The value of a white pixel: 255 for `u8`, 1 for `f32`.
    const MAX: f32;
    /// The type's name in error messages.
    const NAME: &'static str;
    /// The value as `f32`, unscaled.
    fn as_f32(self) -> f32;
    /// The nearest representable value to `v`, unscaled.
    fn from_f32(v: f32) -> Self;
}

impl Sample for u8 {
    const MAX: f32 = 255.0;
    const NAME: &'static str = "u8";
    #[inline(always)]
    fn as_f32(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        // `as` saturates (and maps NaN to 0).
        v.round_ties_even() as u8
    }
}

impl Sample for f32 {
    const MAX: f32 = 1.0;
    const NAME: &'static str = "f32";
    #[inline(always)]
    fn as_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v
    }
}

/// An image whose pixels are `P`, stored in a `Vec`: what every transform takes and returns.
pub type Image<P> = ImageBuffer<P, Vec<<P as Pixel>::Subpixel>>;

/// Channels of pixel type `P` (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA).
pub(crate) fn channels<P: Pixel>() -> usize {
    P::CHANNEL_COUNT as usize
}
