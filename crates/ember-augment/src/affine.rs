//! Affine warps (torchvision's `F.affine` / `F.rotate` on tensors, `RandomAffine`,
//! `RandomRotation`): rotation, translation, scale and shear about the centre, with a fill value
//! for what comes from outside the image.

use rand::rngs::StdRng;

use crate::error::{check_non_negative, check_range};
use crate::field_setters::field_setters;
use crate::resize::Interpolation;
use crate::rng::uniform;
use crate::sample::{channels, Image, Sample, SamplePixel};
use crate::{Error, Result, Transform};

/// One affine warp with fixed parameters, defined as torchvision's `F.affine`: `angle` in
/// degrees clockwise, `translate` in pixels, `scale`, and `shear` (x, y) in degrees, about the
/// image centre (or [`Affine::with_center`]). Output pixels whose source lies outside the image
/// get `fill` (in the image's units, 0..=255 for `u8`); default nearest interpolation.
///
/// Sampling follows `grid_sample(align_corners=False)`: nearest rounds half to even; bilinear
/// blends the in-image taps and mixes in `fill` by torchvision's mask rule
/// `(v - fill) * mask + fill`. Bicubic is not offered by torchvision on tensors and falls back to
/// bilinear here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    angle: f64,
    translate: (f64, f64),
    scale: f64,
    shear: (f64, f64),
    center: Option<(f64, f64)>,
    interpolation: Interpolation,
    fill: f32,
}

impl Affine {
    /// Clockwise rotation by `angle` degrees, translation by `translate` pixels, scaling by
    /// `scale` (> 0) and shear by `shear` degrees (x, y).
    pub fn new(angle: f64, translate: (f64, f64), scale: f64, shear: (f64, f64)) -> Result<Self> {
        if !(scale > 0.0 && scale.is_finite()) {
            return Err(Error::invalid("affine", "scale", scale, "a finite number > 0"));
        }
        Ok(Self { angle, translate, scale, shear, center: None, interpolation: Interpolation::Nearest, fill: 0.0 })
    }

    /// Counter-clockwise rotation by `degrees` about the centre, same size (`F.rotate`).
    pub fn rotation(degrees: f64) -> Self {
        Self {
            angle: -degrees,
            translate: (0.0, 0.0),
            scale: 1.0,
            shear: (0.0, 0.0),
            center: None,
            interpolation: Interpolation::Nearest,
            fill: 0.0,
        }
    }

    field_setters! {
        /// Nearest (default) or bilinear.
        with_interpolation(interpolation: Interpolation);
        /// The value of pixels mapped from outside the image (default 0).
        with_fill(fill: f32);
    }

    /// The fixed point in pixel coordinates (default the image centre).
    pub fn with_center(mut self, x: f64, y: f64) -> Self {
        self.center = Some((x, y));
        self
    }

    /// torchvision's `_get_inverse_affine_matrix`, in coordinates centred on the image.
    fn inverse_matrix(&self, width: u32, height: u32) -> [f64; 6] {
        let (cx, cy) = match self.center {
            Some((x, y)) => (x - width as f64 * 0.5, y - height as f64 * 0.5),
            None => (0.0, 0.0),
        };
        let (tx, ty) = self.translate;
        let rot = self.angle.to_radians();
        let (sx, sy) = (self.shear.0.to_radians(), self.shear.1.to_radians());
        let a = (rot - sy).cos() / sy.cos();
        let b = -(rot - sy).cos() * sx.tan() / sy.cos() - rot.sin();
        let c = (rot - sy).sin() / sy.cos();
        let d = -(rot - sy).sin() * sx.tan() / sy.cos() + rot.cos();
        let mut m = [d, -b, 0.0, -c, a, 0.0].map(|v| v / self.scale);
        m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
        m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
        m[2] += cx;
        m[5] += cy;
        m
    }
}

impl<P: SamplePixel> Transform<Image<P>> for Affine {
    fn apply(&self, image: Image<P>, _rng: &mut StdRng) -> Result<Image<P>> {
        let m = self.inverse_matrix(image.width(), image.height());
        Ok(warp(&image, m, self.interpolation, self.fill))
    }
}

/// Output pixel `(x, y)` samples the source at `M (x - w/2 + 1/2, y - h/2 + 1/2) + (w/2 - 1/2,
/// h/2 - 1/2)`, `M` the centred inverse matrix: `grid_sample` with `align_corners=False`.
fn warp<P: SamplePixel>(image: &Image<P>, m: [f64; 6], interpolation: Interpolation, fill: f32) -> Image<P> {
    let c = channels::<P>();
    let (w, h) = image.dimensions();
    let (wf, hf) = (w as f64, h as f64);
    let src: &[P::Subpixel] = image.as_raw();
    let mut out = Image::<P>::new(w, h);
    let dst: &mut [P::Subpixel] = &mut out;
    let row_len = w as usize * c;
    let fetch = |x: i64, y: i64, ch: usize| -> Option<f32> {
        (x >= 0 && y >= 0 && x < w as i64 && y < h as i64)
            .then(|| src[(y as usize * w as usize + x as usize) * c + ch].as_f32())
    };
    for (y, row) in dst.chunks_exact_mut(row_len.max(1)).enumerate() {
        let yc = y as f64 - hf * 0.5 + 0.5;
        for (x, px) in row.chunks_exact_mut(c).enumerate() {
            let xc = x as f64 - wf * 0.5 + 0.5;
            let sx = m[0] * xc + m[1] * yc + m[2] + wf * 0.5 - 0.5;
            let sy = m[3] * xc + m[4] * yc + m[5] + hf * 0.5 - 0.5;
            match interpolation {
                Interpolation::Nearest => {
                    let (ix, iy) = (sx.round_ties_even() as i64, sy.round_ties_even() as i64);
                    for (ch, o) in px.iter_mut().enumerate() {
                        *o = <P::Subpixel as Sample>::from_f32(fetch(ix, iy, ch).unwrap_or(fill));
                    }
                }
                _ => {
                    let (x0, y0) = (sx.floor(), sy.floor());
                    let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
                    let (x0, y0) = (x0 as i64, y0 as i64);
                    let taps = [
                        (x0, y0, (1.0 - fx) * (1.0 - fy)),
                        (x0 + 1, y0, fx * (1.0 - fy)),
                        (x0, y0 + 1, (1.0 - fx) * fy),
                        (x0 + 1, y0 + 1, fx * fy),
                    ];
                    let mask: f32 = taps.iter().filter(|t| fetch(t.0, t.1, 0).is_some()).map(|t| t.2).sum();
                    for (ch, o) in px.iter_mut().enumerate() {
                        let v: f32 = taps.iter().filter_map(|t| fetch(t.0, t.1, ch).map(|v| v * t.2)).sum();
                        *o = <P::Subpixel as Sample>::from_f32((v - fill) * mask + fill);
                    }
                }
            }
        }
    }
    out
}

/// A random affine warp (torchvision's `RandomAffine`): angle uniform in `degrees`, translation
/// up to a fraction of the size (rounded to whole pixels), scale and shear uniform in their
/// ranges; drawn in that order, each only when configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomAffine {
    degrees: (f64, f64),
    translate: Option<(f64, f64)>,
    scale: Option<(f64, f64)>,
    shear_x: Option<(f64, f64)>,
    shear_y: Option<(f64, f64)>,
    interpolation: Interpolation,
    fill: f32,
}

impl RandomAffine {
    /// Rotation uniform in `[-degrees, degrees]` (clockwise positive), nothing else yet.
    pub fn new(degrees: f64) -> Result<Self> {
        let degrees = check_range("random affine", "degrees", (-degrees, degrees), f64::NEG_INFINITY)?;
        Ok(Self {
            degrees,
            translate: None,
            scale: None,
            shear_x: None,
            shear_y: None,
            interpolation: Interpolation::Nearest,
            fill: 0.0,
        })
    }

    /// Horizontal shift up to `fx * width`, vertical up to `fy * height`; both in `[0, 1]`.
    pub fn with_translate(mut self, fx: f64, fy: f64) -> Result<Self> {
        for f in [fx, fy] {
            if !(0.0..=1.0).contains(&f) {
                return Err(Error::invalid("random affine", "translate", f, "a fraction in [0, 1]"));
            }
        }
        self.translate = Some((fx, fy));
        Ok(self)
    }

    /// Scale uniform in `[low, high]`, `0 < low`.
    pub fn with_scale(mut self, low: f64, high: f64) -> Result<Self> {
        self.scale = Some(check_range("random affine", "scale", (low, high), f64::MIN_POSITIVE)?);
        Ok(self)
    }

    /// Shear along x uniform in `[-degrees, degrees]`.
    pub fn with_shear(mut self, degrees: f64) -> Result<Self> {
        self.shear_x = Some(check_range("random affine", "shear", (-degrees, degrees), f64::NEG_INFINITY)?);
        Ok(self)
    }

    /// Shear along y uniform in `[-degrees, degrees]` as well.
    pub fn with_shear_y(mut self, degrees: f64) -> Result<Self> {
        self.shear_y = Some(check_range("random affine", "shear_y", (-degrees, degrees), f64::NEG_INFINITY)?);
        Ok(self)
    }

    field_setters! {
        /// Nearest (default) or bilinear.
        with_interpolation(interpolation: Interpolation);
        /// The value of pixels mapped from outside the image (default 0).
        with_fill(fill: f32);
    }

    /// Draws the parameters for an image of `width x height`.
    pub fn sample(&self, width: u32, height: u32, rng: &mut StdRng) -> Affine {
        let angle = uniform(rng, self.degrees.0, self.degrees.1);
        let translate = self.translate.map_or((0.0, 0.0), |(fx, fy)| {
            let (mx, my) = (fx * width as f64, fy * height as f64);
            (uniform(rng, -mx, mx).round_ties_even(), uniform(rng, -my, my).round_ties_even())
        });
        let scale = self.scale.map_or(1.0, |(lo, hi)| uniform(rng, lo, hi));
        let shear_x = self.shear_x.map_or(0.0, |(lo, hi)| uniform(rng, lo, hi));
        let shear_y = self.shear_y.map_or(0.0, |(lo, hi)| uniform(rng, lo, hi));
        Affine {
            angle,
            translate,
            scale,
            shear: (shear_x, shear_y),
            center: None,
            interpolation: self.interpolation,
            fill: self.fill,
        }
    }
}

impl<P: SamplePixel> Transform<Image<P>> for RandomAffine {
    fn apply(&self, image: Image<P>, rng: &mut StdRng) -> Result<Image<P>> {
        let affine = self.sample(image.width(), image.height(), rng);
        affine.apply(image, rng)
    }
}

/// Rotation by an angle uniform in `[-degrees, degrees]`, counter-clockwise positive
/// (torchvision's `RandomRotation`, `expand=False`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomRotation {
    degrees: f64,
    interpolation: Interpolation,
    fill: f32,
}

impl RandomRotation {
    /// Up to `degrees` (>= 0) either way.
    pub fn new(degrees: f64) -> Result<Self> {
        check_non_negative("random rotation", "degrees", degrees)?;
        Ok(Self { degrees, interpolation: Interpolation::Nearest, fill: 0.0 })
    }

    field_setters! {
        /// Nearest (default) or bilinear.
        with_interpolation(interpolation: Interpolation);
        /// The value of pixels mapped from outside the image (default 0).
        with_fill(fill: f32);
    }
}

impl<P: SamplePixel> Transform<Image<P>> for RandomRotation {
    fn apply(&self, image: Image<P>, rng: &mut StdRng) -> Result<Image<P>> {
        let angle = uniform(rng, -self.degrees, self.degrees);
        Affine::rotation(angle).with_interpolation(self.interpolation).with_fill(self.fill).apply(image, rng)
    }
}
