//! In-place colour adjustments on raw interleaved buffers, as torchvision's functional
//! `adjust_*`: the building blocks of colour jitter, grayscale and TrivialAugment.
//!
//! Values are in the sample type's units (0..=255 for `u8`, 0..=1 for `f32`); blends clamp to
//! that range as torchvision's `_blend` does. With 3 or 4 channels the first three are RGB (a
//! fourth, alpha, is left alone); with 1 or 2 the first is grey.

use crate::sample::Sample;

/// ITU-R 601 luma, torchvision's weights.
#[inline(always)]
pub(crate) fn luma(r: f32, g: f32, b: f32) -> f32 {
    0.2989 * r + 0.587 * g + 0.114 * b
}

/// Number of colour channels (3 for RGB/RGBA, 1 for grey/grey-alpha) in pixels of `c` values.
fn colour_channels(c: usize) -> usize {
    if c >= 3 {
        3
    } else {
        1
    }
}

/// `v * factor`, clamped.
pub(crate) fn brightness<S: Sample>(data: &mut [S], c: usize, factor: f32) {
    let cc = colour_channels(c);
    for px in data.chunks_exact_mut(c) {
        for v in &mut px[..cc] {
            *v = S::from_f32((v.as_f32() * factor).clamp(0.0, S::MAX));
        }
    }
}

/// Mean grey level of the image.
pub(crate) fn mean_grey<S: Sample>(data: &[S], c: usize) -> f32 {
    let n = data.len() / c.max(1);
    if n == 0 {
        return 0.0;
    }
    let sum: f64 = if c >= 3 {
        data.chunks_exact(c).map(|p| luma(p[0].as_f32(), p[1].as_f32(), p[2].as_f32()) as f64).sum()
    } else {
        data.chunks_exact(c).map(|p| p[0].as_f32() as f64).sum()
    };
    (sum / n as f64) as f32
}

/// Blend with the mean grey level: `v * factor + mean * (1 - factor)`, clamped.
pub(crate) fn contrast<S: Sample>(data: &mut [S], c: usize, factor: f32) {
    let offset = mean_grey(data, c) * (1.0 - factor);
    let cc = colour_channels(c);
    for px in data.chunks_exact_mut(c) {
        for v in &mut px[..cc] {
            *v = S::from_f32((v.as_f32() * factor + offset).clamp(0.0, S::MAX));
        }
    }
}

/// Blend each pixel with its own grey: `v * factor + luma * (1 - factor)`, clamped. Grey
/// images are left alone.
pub(crate) fn saturation<S: Sample>(data: &mut [S], c: usize, factor: f32) {
    if c < 3 {
        return;
    }
    for px in data.chunks_exact_mut(c) {
        let (r, g, b) = (px[0].as_f32(), px[1].as_f32(), px[2].as_f32());
        let grey = luma(r, g, b) * (1.0 - factor);
        px[0] = S::from_f32((r * factor + grey).clamp(0.0, S::MAX));
        px[1] = S::from_f32((g * factor + grey).clamp(0.0, S::MAX));
        px[2] = S::from_f32((b * factor + grey).clamp(0.0, S::MAX));
    }
}

/// Rotates the hue by `shift` turns (in `[-0.5, 0.5]`) through HSV, as torchvision's
/// `adjust_hue`. Grey images are left alone.
pub(crate) fn hue<S: Sample>(data: &mut [S], c: usize, shift: f32) {
    if c < 3 {
        return;
    }
    let scale = 1.0 / S::MAX;
    for px in data.chunks_exact_mut(c) {
        let (r, g, b) = (px[0].as_f32() * scale, px[1].as_f32() * scale, px[2].as_f32() * scale);
        let (h, s, v) = rgb_to_hsv(r, g, b);
        let (r, g, b) = hsv_to_rgb((h + shift).rem_euclid(1.0), s, v);
        px[0] = S::from_f32((r * S::MAX).clamp(0.0, S::MAX));
        px[1] = S::from_f32((g * S::MAX).clamp(0.0, S::MAX));
        px[2] = S::from_f32((b * S::MAX).clamp(0.0, S::MAX));
    }
}

/// Every colour channel replaced by the luma (torchvision's `rgb_to_grayscale` with
/// `num_output_channels=3`). Grey images are left alone.
pub(crate) fn grayscale<S: Sample>(data: &mut [S], c: usize) {
    if c < 3 {
        return;
    }
    for px in data.chunks_exact_mut(c) {
        let grey = S::from_f32(luma(px[0].as_f32(), px[1].as_f32(), px[2].as_f32()));
        px[..3].fill(grey);
    }
}

fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let range = max - min;
    if range == 0.0 {
        return (0.0, 0.0, max);
    }
    let s = if max == 0.0 { 0.0 } else { range / max };
    let h = if max == r {
        (g - b) / range
    } else if max == g {
        2.0 + (b - r) / range
    } else {
        4.0 + (r - g) / range
    };
    ((h / 6.0).rem_euclid(1.0), s, max)
}

fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let h6 = h * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let p = v * (1.0 - s);
    let q = v * (1.0 - s * f);
    let t = v * (1.0 - s * (1.0 - f));
    match (i as i32).rem_euclid(6) {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

/// Keeps the top `bits` bits of `u8` values; `f32` values are quantised to `2^bits` levels
/// (torchvision's `posterize`).
pub(crate) fn posterize<S: Sample>(data: &mut [S], c: usize, bits: u32) {
    let cc = colour_channels(c);
    let bits = bits.clamp(1, 8);
    let levels = (1u32 << bits) as f32;
    let integer = S::MAX > 1.0;
    let step = 2f32.powi(8 - bits as i32);
    for px in data.chunks_exact_mut(c) {
        for v in &mut px[..cc] {
            let x = v.as_f32();
            *v = S::from_f32(if integer {
                (x / step).floor() * step
            } else {
                (x * levels).floor().clamp(0.0, levels - 1.0) / levels
            });
        }
    }
}

/// Inverts values at or above `threshold` (torchvision's `solarize`).
pub(crate) fn solarize<S: Sample>(data: &mut [S], c: usize, threshold: f32) {
    let cc = colour_channels(c);
    for px in data.chunks_exact_mut(c) {
        for v in &mut px[..cc] {
            if v.as_f32() >= threshold {
                *v = S::from_f32(S::MAX - v.as_f32());
            }
        }
    }
}

/// Stretches each colour channel to the full range (torchvision's `autocontrast`).
pub(crate) fn autocontrast<S: Sample>(data: &mut [S], c: usize) {
    for ch in 0..colour_channels(c) {
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for px in data.chunks_exact(c) {
            lo = lo.min(px[ch].as_f32());
            hi = hi.max(px[ch].as_f32());
        }
        if hi > lo {
            let scale = S::MAX / (hi - lo);
            for px in data.chunks_exact_mut(c) {
                px[ch] = S::from_f32(((px[ch].as_f32() - lo) * scale).clamp(0.0, S::MAX));
            }
        }
    }
}

/// Histogram equalisation per colour channel on 256 levels (PIL's and torchvision's
/// `equalize`); `f32` values are quantised to 256 levels for the histogram.
pub(crate) fn equalize<S: Sample>(data: &mut [S], c: usize) {
    let to_level = |v: S| ((v.as_f32() / S::MAX * 255.0).round_ties_even().clamp(0.0, 255.0)) as usize;
    for ch in 0..colour_channels(c) {
        let mut hist = [0usize; 256];
        for px in data.chunks_exact(c) {
            hist[to_level(px[ch])] += 1;
        }
        let total: usize = hist.iter().sum();
        let last = hist.iter().rposition(|&n| n > 0).map_or(0, |i| hist[i]);
        let step = (total - last) / 255;
        if step == 0 {
            continue;
        }
        let mut lut = [0f32; 256];
        let mut cumulative = step / 2;
        for (l, &n) in lut.iter_mut().zip(&hist) {
            *l = ((cumulative / step).min(255) as f32) / 255.0 * S::MAX;
            cumulative += n;
        }
        for px in data.chunks_exact_mut(c) {
            px[ch] = S::from_f32(lut[to_level(px[ch])]);
        }
    }
}

/// Blends with a 3x3 smoothed copy (`[[1,1,1],[1,5,1],[1,1,1]] / 13`, border pixels kept):
/// `factor` 0 smooths, 1 keeps, 2 sharpens (torchvision's `adjust_sharpness`).
pub(crate) fn sharpness<S: Sample>(data: &mut [S], c: usize, width: usize, factor: f32) {
    let height = data.len() / (c * width).max(1);
    if width < 3 || height < 3 {
        return;
    }
    let src: Vec<f32> = data.iter().map(|v| v.as_f32()).collect();
    let row = width * c;
    for y in 1..height - 1 {
        for x in 1..width - 1 {
            for ch in 0..colour_channels(c) {
                let at = |dx: usize, dy: usize| src[(y + dy - 1) * row + (x + dx - 1) * c + ch];
                let mut sum = 0.0;
                for dy in 0..3 {
                    for dx in 0..3 {
                        sum += at(dx, dy);
                    }
                }
                let centre = at(1, 1);
                let smooth = ((sum + 4.0 * centre) / 13.0).clamp(0.0, S::MAX);
                let smooth = S::from_f32(smooth).as_f32();
                data[y * row + x * c + ch] =
                    S::from_f32((centre * factor + smooth * (1.0 - factor)).clamp(0.0, S::MAX));
            }
        }
    }
}
