//! Resizing (torchvision's `Resize` on tensors): nearest, bilinear and bicubic, with or
//! without antialiasing, as separable filters over precomputed taps.

use image::Pixel;
use rand::rngs::StdRng;

use crate::error::{check_non_empty, check_size};
use crate::field_setters::field_setters;
use crate::sample::{channels, Image, Sample, SamplePixel};
use crate::{Error, Result, Transform};

/// How a resampling transform computes a pixel from its neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interpolation {
    /// The pixel under the sampling point (torch's legacy `nearest`, not `nearest-exact`).
    Nearest,
    /// Linear in each direction (a triangle filter).
    #[default]
    Bilinear,
    /// Cubic convolution: `a = -0.5` with antialiasing (as torch and PIL), `a = -0.75` without.
    Bicubic,
}

/// Resizes to exactly `width x height` (torchvision `Resize((height, width))`).
///
/// Defaults match torchvision v2 on tensors: bilinear with `antialias=True`. With antialiasing,
/// a downscaling filter widens by the scale factor (PIL's and torch's `_upsample_*_aa`);
/// upscaling is plain interpolation either way. Pixel centres are aligned
/// (`align_corners=False`). Without antialiasing, bicubic differs from torch within two pixels
/// of the border (torch clamps indices, ember renormalises the in-image weights).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resize {
    width: u32,
    height: u32,
    interpolation: Interpolation,
    antialias: bool,
}

impl Resize {
    /// Bilinear, antialiased resize to `width x height`; both must be positive.
    pub fn new(width: u32, height: u32) -> Result<Self> {
        check_size("resize", width, height)?;
        Ok(Self { width, height, interpolation: Interpolation::Bilinear, antialias: true })
    }

    field_setters! {
        /// The interpolation (default bilinear).
        with_interpolation(interpolation: Interpolation);
        /// Whether downscaling low-pass filters first (default true; ignored by nearest).
        with_antialias(antialias: bool);
    }
}

impl<P: SamplePixel> Transform<Image<P>> for Resize {
    fn apply(&self, image: Image<P>, _rng: &mut StdRng) -> Result<Image<P>> {
        let (w, h) = image.dimensions();
        if (w, h) == (self.width, self.height) {
            return Ok(image);
        }
        check_non_empty("resize", w, h)?;
        let window = Window { left: 0, top: 0, width: w, height: h };
        Ok(resize_window(&image, window, self.width, self.height, self.interpolation, self.antialias))
    }
}

/// The most pixels [`ResizeShorter`] makes: a 20000x1 strip resized to a shorter side of 256
/// would be 1.3 gigapixels.
pub const MAX_RESIZED_PIXELS: u64 = 1 << 26;

/// Resizes the shorter side to `side` pixels and the longer one in proportion, truncated
/// (torchvision `Resize(int)`); bilinear and antialiased by default, like [`Resize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResizeShorter {
    side: u32,
    interpolation: Interpolation,
}

impl ResizeShorter {
    /// Shorter side to `side` (positive).
    pub fn new(side: u32) -> Result<Self> {
        if side == 0 {
            return Err(Error::invalid("resize-short", "side", 0, "a positive size"));
        }
        Ok(Self { side, interpolation: Interpolation::Bilinear })
    }

    field_setters! {
        /// The interpolation (default bilinear).
        with_interpolation(interpolation: Interpolation);
    }

    /// The `(width, height)` a `w x h` image becomes; fails on an empty image or one so
    /// elongated that the result would exceed [`MAX_RESIZED_PIXELS`].
    pub fn output_size(&self, w: u32, h: u32) -> Result<(u32, u32)> {
        check_non_empty("resize-short", w, h)?;
        let (nw, nh) = shorter_side_resized(w, h, self.side);
        if nw.saturating_mul(nh) > MAX_RESIZED_PIXELS {
            return Err(Error::invalid(
                "resize-short",
                "image",
                format!("{w}x{h} (it would become {nw}x{nh})"),
                "an image whose resized size stays within 2^26 pixels; crop it closer to a square",
            ));
        }
        // Both are at most MAX_RESIZED_PIXELS, so they fit in u32.
        Ok((nw as u32, nh as u32))
    }
}

/// torchvision's `Resize(int)` rule: the size a `w x h` image (both positive) becomes when its
/// shorter side becomes `side` and the longer one is scaled in proportion, truncated. In `u64`,
/// so an elongated image's size can be checked against [`MAX_RESIZED_PIXELS`] before use.
pub fn shorter_side_resized(w: u32, h: u32, side: u32) -> (u64, u64) {
    let side = u64::from(side);
    if w <= h {
        (side, side * u64::from(h) / u64::from(w))
    } else {
        (side * u64::from(w) / u64::from(h), side)
    }
}

impl<P: SamplePixel> Transform<Image<P>> for ResizeShorter {
    fn apply(&self, image: Image<P>, rng: &mut StdRng) -> Result<Image<P>> {
        let (w, h) = self.output_size(image.width(), image.height())?;
        Resize::new(w, h)?.with_interpolation(self.interpolation).apply(image, rng)
    }
}

/// A rectangle inside an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

/// Resamples `window` of `image` (which must lie inside it and be non-empty) to
/// `out_w x out_h`: crop and resize in one pass.
pub(crate) fn resize_window<P: SamplePixel>(
    image: &Image<P>,
    window: Window,
    out_w: u32,
    out_h: u32,
    interpolation: Interpolation,
    antialias: bool,
) -> Image<P> {
    match interpolation {
        Interpolation::Nearest => resize_nearest(image, window, out_w, out_h),
        _ => {
            let tx = Taps::new(window.width as usize, out_w as usize, interpolation, antialias);
            let ty = Taps::new(window.height as usize, out_h as usize, interpolation, antialias);
            match channels::<P>() {
                1 => resize_separable::<P, 1>(image, window, &tx, &ty),
                2 => resize_separable::<P, 2>(image, window, &tx, &ty),
                3 => resize_separable::<P, 3>(image, window, &tx, &ty),
                _ => resize_separable::<P, 4>(image, window, &tx, &ty),
            }
        }
    }
}

/// torch's legacy nearest index: `min(floor(i * (in / out)), in - 1)` in `f32`.
fn nearest_indices(in_size: u32, out_size: u32) -> Vec<usize> {
    let scale = in_size as f32 / out_size as f32;
    (0..out_size).map(|i| ((i as f32 * scale).floor() as usize).min(in_size as usize - 1)).collect()
}

fn resize_nearest<P: Pixel>(image: &Image<P>, window: Window, out_w: u32, out_h: u32) -> Image<P> {
    let c = channels::<P>();
    let xs = nearest_indices(window.width, out_w);
    let ys = nearest_indices(window.height, out_h);
    let src: &[P::Subpixel] = image.as_raw();
    let stride = image.width() as usize * c;
    let mut out = Image::<P>::new(out_w, out_h);
    let dst: &mut [P::Subpixel] = &mut out;
    for (row, &sy) in dst.chunks_exact_mut(out_w as usize * c).zip(&ys) {
        let src_row = &src[(window.top as usize + sy) * stride + window.left as usize * c..];
        for (px, &sx) in row.chunks_exact_mut(c).zip(&xs) {
            px.copy_from_slice(&src_row[sx * c..sx * c + c]);
        }
    }
    out
}

/// For each output index, the first input index and the normalised weights of its taps.
struct Taps {
    first: Vec<usize>,
    count: Vec<usize>,
    /// `stride` weights per output index, the first `count[i]` used.
    weights: Vec<f32>,
    stride: usize,
}

impl Taps {
    /// torch's `_compute_indices_min_size_weights_aa`: centre `scale * (i + 0.5)`, support
    /// `interp_size / 2` (times `scale` when antialiasing a downscale), weights renormalised over
    /// the taps inside the input.
    fn new(in_size: usize, out_size: usize, interpolation: Interpolation, antialias: bool) -> Self {
        let scale = in_size as f64 / out_size as f64;
        let (half_width, filter): (f64, fn(f64) -> f64) = match interpolation {
            Interpolation::Bicubic if antialias => (2.0, |x| cubic(x, -0.5)),
            Interpolation::Bicubic => (2.0, |x| cubic(x, -0.75)),
            _ => (1.0, |x| (1.0 - x.abs()).max(0.0)),
        };
        let widen = antialias && scale >= 1.0;
        let support = if widen { half_width * scale } else { half_width };
        let inv_scale = if widen { 1.0 / scale } else { 1.0 };
        let stride = (support.ceil() as usize) * 2 + 1;
        let mut taps = Self {
            first: Vec::with_capacity(out_size),
            count: Vec::with_capacity(out_size),
            weights: vec![0.0; stride * out_size],
            stride,
        };
        let mut raw = vec![0.0f64; stride];
        for i in 0..out_size {
            let center = scale * (i as f64 + 0.5);
            let lo = ((center - support + 0.5) as i64).max(0) as usize;
            let hi = ((center + support + 0.5) as i64).clamp(0, in_size as i64) as usize;
            let n = hi.saturating_sub(lo).min(stride);
            let mut total = 0.0;
            for (k, r) in raw[..n].iter_mut().enumerate() {
                *r = filter(((lo + k) as f64 - center + 0.5) * inv_scale);
                total += *r;
            }
            for (w, r) in taps.weights[i * stride..i * stride + n].iter_mut().zip(&raw[..n]) {
                *w = if total != 0.0 { (r / total) as f32 } else { 0.0 };
            }
            taps.first.push(lo.min(in_size.saturating_sub(1)));
            taps.count.push(n);
        }
        taps
    }

    fn get(&self, i: usize) -> (usize, &[f32]) {
        (self.first[i], &self.weights[i * self.stride..i * self.stride + self.count[i]])
    }
}

fn cubic(x: f64, a: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * a
    } else {
        0.0
    }
}

/// Horizontal pass into an `f32` buffer (rounded to the sample type), then vertical pass into
/// the output.
fn resize_separable<P: SamplePixel, const C: usize>(
    image: &Image<P>,
    window: Window,
    tx: &Taps,
    ty: &Taps,
) -> Image<P> {
    let (out_w, out_h) = (tx.first.len(), ty.first.len());
    let src: &[P::Subpixel] = image.as_raw();
    let stride = image.width() as usize * C;
    let row_len = out_w * C;
    let integer = <P::Subpixel as Sample>::MAX > 1.0;
    let mut tmp = vec![0f32; window.height as usize * row_len];
    for (y, tmp_row) in tmp.chunks_exact_mut(row_len).enumerate() {
        let start = (window.top as usize + y) * stride + window.left as usize * C;
        let src_row = &src[start..start + window.width as usize * C];
        for (ox, out_px) in tmp_row.chunks_exact_mut(C).enumerate() {
            let (first, weights) = tx.get(ox);
            let mut acc = [0f32; C];
            for (k, &wt) in weights.iter().enumerate() {
                let px = &src_row[(first + k) * C..(first + k) * C + C];
                for ch in 0..C {
                    acc[ch] += wt * px[ch].as_f32();
                }
            }
            for (o, a) in out_px.iter_mut().zip(acc) {
                // Integer images keep an integer intermediate, as torch's and PIL's u8 paths
                // do (it matters where bicubic overshoots the range).
                *o = if integer { <P::Subpixel as Sample>::from_f32(a).as_f32() } else { a };
            }
        }
    }
    let mut out = Image::<P>::new(out_w as u32, out_h as u32);
    let dst: &mut [P::Subpixel] = &mut out;
    let mut acc = vec![0f32; row_len];
    for (oy, out_row) in dst.chunks_exact_mut(row_len.max(1)).enumerate() {
        let (first, weights) = ty.get(oy);
        acc.fill(0.0);
        for (k, &wt) in weights.iter().enumerate() {
            let tmp_row = &tmp[(first + k) * row_len..(first + k + 1) * row_len];
            for (a, &t) in acc.iter_mut().zip(tmp_row) {
                *a += wt * t;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = <P::Subpixel as Sample>::from_f32(a);
        }
    }
    out
}
