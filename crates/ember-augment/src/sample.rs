//! The pixel value types transforms work on (`u8` and `f32`), and the buffer aliases they share.

use image::{ImageBuffer, Pixel, Primitive};

/// A pixel whose values are a [`Sample`] (`Luma<u8>`, `Rgb<f32>`, ...): the pixels every transform
/// works on. Implemented for every such `image` pixel; it names the bound pair
/// `P: Pixel, P::Subpixel: Sample` once.
pub trait SamplePixel: Pixel<Subpixel: Sample> {}

impl<P: Pixel<Subpixel: Sample>> SamplePixel for P {}

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

    /// Replaces the first `colour` values of every `channels`-value pixel by `from_f32(f(v))`.
    /// `u8` evaluates `f` once per possible value (a 256-entry table) instead of once per value.
    fn map_colour_values(data: &mut [Self], channels: usize, colour: usize, f: impl Fn(f32) -> f32) {
        for px in data.chunks_exact_mut(channels) {
            for v in &mut px[..colour] {
                *v = Self::from_f32(f(v.as_f32()));
            }
        }
    }
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
        // Round half to even without a libm call (the x86-64 baseline has no `roundss`):
        // adding 1.5 * 2^23 leaves no fraction bits, so the FPU rounds in its default mode
        // (half to even). Exact for |v| < 2^22; larger values saturate below anyway, as `as`
        // saturates (and maps NaN to 0).
        const MAGIC: f32 = 12_582_912.0;
        let v = v.clamp(-1.0, 256.0);
        ((v + MAGIC) - MAGIC) as u8
    }

    fn map_colour_values(data: &mut [Self], channels: usize, colour: usize, f: impl Fn(f32) -> f32) {
        let mut table = [0u8; 256];
        for (i, t) in table.iter_mut().enumerate() {
            *t = Self::from_f32(f(i as f32));
        }
        if channels == colour {
            for v in data.iter_mut() {
                *v = table[*v as usize];
            }
            return;
        }
        for px in data.chunks_exact_mut(channels) {
            for v in &mut px[..colour] {
                *v = table[*v as usize];
            }
        }
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
