//! Per-sample random generators, and the few distributions transforms draw from.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The RNG for sample `index` in `epoch` of a run seeded with `seed`.
///
/// The three numbers are mixed with SplitMix64 so neighbouring indices and epochs get
/// unrelated streams.
pub fn sample_rng(seed: u64, epoch: u64, index: u64) -> StdRng {
    let mixed = splitmix64(splitmix64(splitmix64(seed) ^ epoch) ^ index);
    StdRng::seed_from_u64(mixed)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform on `[low, high]`; `low` when the range is empty (`low >= high`).
pub(crate) fn uniform(rng: &mut StdRng, low: f64, high: f64) -> f64 {
    if low >= high {
        // Still draw, so the stream does not depend on the parameters.
        let _: f64 = rng.random();
        return low;
    }
    low + (high - low) * rng.random::<f64>()
}

/// Two independent standard normal values (Box-Muller).
pub(crate) fn normal_pair(rng: &mut StdRng) -> (f64, f64) {
    // 1 - u lies in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}

/// Fills `out` with independent standard normal values.
pub(crate) fn fill_standard_normal(rng: &mut StdRng, out: &mut [f32]) {
    let mut pairs = out.chunks_exact_mut(2);
    for pair in &mut pairs {
        let (a, b) = normal_pair(rng);
        pair[0] = a as f32;
        pair[1] = b as f32;
    }
    if let [last] = pairs.into_remainder() {
        *last = normal_pair(rng).0 as f32;
    }
}

/// Gamma(shape, 1) by Marsaglia and Tsang's method; `shape > 0`.
pub(crate) fn gamma(rng: &mut StdRng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u: f64 = 1.0 - rng.random::<f64>();
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal_pair(rng).0;
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = 1.0 - rng.random::<f64>();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// Beta(a, b), from two gammas; `a, b > 0`.
pub(crate) fn beta(rng: &mut StdRng, a: f64, b: f64) -> f64 {
    let x = gamma(rng, a);
    let y = gamma(rng, b);
    if x + y == 0.0 {
        0.5
    } else {
        x / (x + y)
    }
}

/// The sides of torchvision's random box (random erasing, random resized crop): an area of
/// `area * U(scale)` and an aspect ratio `exp(U(ln ratio.0, ln ratio.1))`, as
/// `(sqrt(area * aspect), sqrt(area / aspect))` rounded half to even (which side is the width
/// is the caller's convention). Draws the area, then the aspect ratio.
pub(crate) fn random_box_sides(rng: &mut StdRng, area: f64, scale: (f64, f64), ratio: (f64, f64)) -> (u32, u32) {
    let box_area = area * uniform(rng, scale.0, scale.1);
    let aspect = uniform(rng, ratio.0.ln(), ratio.1.ln()).exp();
    ((box_area * aspect).sqrt().round_ties_even() as u32, (box_area / aspect).sqrt().round_ties_even() as u32)
}
