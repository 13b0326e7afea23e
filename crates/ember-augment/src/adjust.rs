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
    S::map_colour_values(data, c, colour_channels(c), |v| (v * factor).clamp(0.0, S::MAX));
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
    S::map_colour_values(data, c, colour_channels(c), |v| (v * factor + offset).clamp(0.0, S::MAX));
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
    match c {
        3 => hue_fixed::<S, 3>(data, shift),
        4 => hue_fixed::<S, 4>(data, shift),
        _ => {}
    }
}

fn hue_fixed<S: Sample, const C: usize>(data: &mut [S], shift: f32) {
    for px in data.chunks_exact_mut(C) {
        let (r, g, b) = (px[0].as_f32(), px[1].as_f32(), px[2].as_f32());
        let (r, g, b) = rotate_hue(r, g, b, shift);
        px[0] = S::from_f32(r.clamp(0.0, S::MAX));
        px[1] = S::from_f32(g.clamp(0.0, S::MAX));
        px[2] = S::from_f32(b.clamp(0.0, S::MAX));
    }
}

/// RGB to HSV, hue shifted, back to RGB, branch-free (selects only). HSV is taken in the
/// image's own units: `v` is the maximum as stored and `v * s` is the range `max - min`, so no
/// division by `v` is needed. Back to RGB, channel `n` (5 red, 3 green, 1 blue) is
/// `v - v s clamp(min(k, 4 - k), 0, 1)` with `k = (n + 6h) mod 6`, the six-sector formula
/// without its branch.
#[inline(always)]
fn rotate_hue(r: f32, g: f32, b: f32, shift: f32) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let range = max - r.min(g).min(b);
    let inv = if range > 0.0 { 1.0 / range } else { 0.0 };
    let (hr, hg, hb) = ((g - b) * inv, 2.0 + (b - r) * inv, 4.0 + (r - g) * inv);
    let h6 = if max == r {
        hr
    } else if max == g {
        hg
    } else {
        hb
    };
    // h6 in [-1, 6); shifted by up to ±3; wrap into [0, 6).
    let h6 = h6 + shift * 6.0;
    let h6 = if h6 < 0.0 { h6 + 6.0 } else { h6 };
    let h6 = if h6 >= 6.0 { h6 - 6.0 } else { h6 };
    let h6 = if h6 < 0.0 { h6 + 6.0 } else { h6 };
    let channel = |n: f32| {
        let k = n + h6;
        let k = if k >= 6.0 { k - 6.0 } else { k };
        max - range * k.min(4.0 - k).clamp(0.0, 1.0)
    };
    (channel(5.0), channel(3.0), channel(1.0))
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
