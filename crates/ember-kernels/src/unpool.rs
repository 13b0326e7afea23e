//! Unpooling for the backward pass of the fused convolution + activation + max pool: each
//! pooled cell's gradient goes to its window's recorded first maximum, through the
//! activation's derivative (read off the pooled output, which is that maximum's activated
//! value); every other element of the full-resolution gradient is zero.
//!
//! The classic 2x2 / stride 2 pool on f32 runs vectorised on AVX-512 CPUs: 16 cells at a time,
//! the argmax compared with the window's four positions and the two rows written interleaved,
//! with no zero fill and no scattered stores. Everything else scatters.

use crate::activation::FusedActivation;
use crate::element::{as_f32, as_f32_mut, has_avx512f, Float};
use crate::pool_geometry::{Plane, Pool2dParams};

/// Writes one channel's full-resolution gradient `plane` (`pool.h x pool.w`, every element)
/// from its pooled output `y`, gradient `dy` and argmax `ix` (flat indices into `plane`,
/// `u32::MAX` for a window wholly in the padding).
pub(crate) fn unpool_plane<T: Float>(
    plane: &mut [T],
    ix: &[u32],
    y: &[T],
    dy: &[T],
    act: FusedActivation,
    pool: &Plane,
) {
    let pohw = pool.oh * pool.ow;
    assert!(plane.len() == pool.h * pool.w && ix.len() == pohw && y.len() == pohw && dy.len() == pohw, "unpool: sizes");
    #[cfg(target_arch = "x86_64")]
    if pool.p == Pool2dParams::square(2) && has_avx512f() {
        if let (Some(y), Some(dy), Some(out)) = (as_f32(y), as_f32(dy), as_f32_mut(plane)) {
            // SAFETY: AVX-512F is present; the sizes were asserted above, and a 2x2 / stride 2
            // pool without padding has `2 * oh <= h` and `2 * ow <= w`.
            unsafe { avx512::unpool_2x2(out, ix, y, dy, act, pool) };
            return;
        }
    }
    plane.fill(T::ZERO);
    // One loop per activation so the test is not re-dispatched per cell.
    match act {
        FusedActivation::Identity => scatter(plane, ix, y, dy, |_| true),
        FusedActivation::Relu => scatter(plane, ix, y, dy, |v| v > T::ZERO),
        FusedActivation::Relu6 => {
            let six = T::from_f64(6.0);
            scatter(plane, ix, y, dy, |v| v > T::ZERO && v < six)
        }
    }
}

/// `plane[ix[k]] += dy[k]` where `passes(y[k])` (`ix[k] == u32::MAX`: a window in the padding).
#[inline(always)]
pub(crate) fn scatter<T: Float>(plane: &mut [T], ix: &[u32], y: &[T], dy: &[T], passes: impl Fn(T) -> bool) {
    for ((&i, &yv), &gv) in ix.iter().zip(y).zip(dy) {
        if i != u32::MAX {
            plane[i as usize] += if passes(yv) { gv } else { T::ZERO };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use crate::activation::FusedActivation;
    use crate::pool_geometry::Plane;

    const LANES: usize = 16;

    /// # Safety
    /// AVX-512F must be available; `out` must hold `pool.h * pool.w` elements, `ix`, `y` and
    /// `dy` `pool.oh * pool.ow`; the pool is 2x2 / stride 2 without padding.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn unpool_2x2(
        out: &mut [f32],
        ix: &[u32],
        y: &[f32],
        dy: &[f32],
        act: FusedActivation,
        pool: &Plane,
    ) {
        let (h, w, poh, pow) = (pool.h, pool.w, pool.oh, pool.ow);
        debug_assert!(2 * poh <= h && 2 * pow <= w && out.len() >= h * w && ix.len() >= poh * pow);
        // Rows and columns no window covers (odd sizes) get no gradient.
        for row in out[..h * w].chunks_exact_mut(w) {
            row[2 * pow..].fill(0.0);
        }
        out[2 * poh * w..h * w].fill(0.0);
        // SAFETY: the caller upholds the contract above; every access is masked to the cells
        // `px < pow` of pooled row `py` and the elements `< 2 * pow` of rows `2py`, `2py + 1`.
        unsafe {
            let evens: [i32; LANES] = std::array::from_fn(|i| 2 * i as i32);
            let lo: [i32; LANES] = std::array::from_fn(|i| (i / 2 + (i % 2) * LANES) as i32);
            let hi: [i32; LANES] = std::array::from_fn(|i| (LANES / 2 + i / 2 + (i % 2) * LANES) as i32);
            let even = _mm512_loadu_epi32(evens.as_ptr());
            let (lo, hi) = (_mm512_loadu_epi32(lo.as_ptr()), _mm512_loadu_epi32(hi.as_ptr()));
            let (zero, six) = (_mm512_setzero_ps(), _mm512_set1_ps(6.0));
            let (one, below) = (_mm512_set1_epi32(1), _mm512_set1_epi32(w as i32));
            for py in 0..poh {
                let mut px = 0;
                while px < pow {
                    let n = (pow - px).min(LANES);
                    let mask = ((1u32 << n) - 1) as __mmask16;
                    let cell = py * pow + px;
                    let iv = _mm512_maskz_loadu_epi32(mask, ix.as_ptr().add(cell).cast::<i32>());
                    let yv = _mm512_maskz_loadu_ps(mask, y.as_ptr().add(cell));
                    let gv = _mm512_maskz_loadu_ps(mask, dy.as_ptr().add(cell));
                    let passes = match act {
                        FusedActivation::Identity => mask,
                        FusedActivation::Relu => _mm512_mask_cmp_ps_mask::<_CMP_GT_OQ>(mask, yv, zero),
                        FusedActivation::Relu6 => {
                            _mm512_mask_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(yv, zero), yv, six)
                        }
                    };
                    let g = _mm512_maskz_mov_ps(passes, gv);
                    // Window (py, px + lane) starts at row 2py, column 2 (px + lane).
                    let start = _mm512_add_epi32(_mm512_set1_epi32((2 * py * w + 2 * px) as i32), even);
                    let start_below = _mm512_add_epi32(start, below);
                    let top_even = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(iv, start), g);
                    let top_odd = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(iv, _mm512_add_epi32(start, one)), g);
                    let bottom_even = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(iv, start_below), g);
                    let bottom_odd =
                        _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(iv, _mm512_add_epi32(start_below, one)), g);
                    // 2n output elements per row: the first 16 in `lo`, the rest in `hi`.
                    let first = ((1u32 << (2 * n).min(LANES)) - 1) as __mmask16;
                    let second = if 2 * n > LANES { ((1u32 << (2 * n - LANES)) - 1) as __mmask16 } else { 0 };
                    for (row, e, o) in [(2 * py, top_even, top_odd), (2 * py + 1, bottom_even, bottom_odd)] {
                        let dst = out.as_mut_ptr().add(row * w + 2 * px);
                        _mm512_mask_storeu_ps(dst, first, _mm512_permutex2var_ps(e, lo, o));
                        _mm512_mask_storeu_ps(dst.add(LANES), second, _mm512_permutex2var_ps(e, hi, o));
                    }
                    px += LANES;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn unpooling_equals_the_scatter_for_every_activation_and_odd_sizes() {
        // Small integers: ties, and values at 0 and 6 (the activations' kinks).
        let mut rng = StdRng::seed_from_u64(3);
        let mut next = move || rng.random_range(-3i32..=5) as f32;
        for (h, w) in [(26, 26), (11, 11), (2, 2), (7, 40), (40, 67), (3, 5)] {
            let pool = Plane { h, w, oh: h / 2, ow: w / 2, p: Pool2dParams::square(2) };
            let x: Vec<f32> = (0..h * w).map(|_| next() * 2.0).collect();
            for act in [FusedActivation::Identity, FusedActivation::Relu, FusedActivation::Relu6] {
                let mut activated = x.clone();
                act.apply(&mut activated);
                let cells = pool.oh * pool.ow;
                let (mut y, mut ix) = (vec![0f32; cells], vec![0u32; cells]);
                // Each 2x2 window's maximum and its first position in row-major order.
                for oy in 0..pool.oh {
                    for ox in 0..pool.ow {
                        let cell = oy * pool.ow + ox;
                        let window = [0, 1, w, w + 1].map(|d| 2 * oy * w + 2 * ox + d);
                        ix[cell] =
                            window.into_iter().fold(window[0], |a, b| if activated[b] > activated[a] { b } else { a })
                                as u32;
                        y[cell] = activated[ix[cell] as usize];
                    }
                }
                let dy: Vec<f32> = (0..cells).map(|_| next()).collect();
                let mut want = vec![0f32; h * w];
                let passes = |v: f32| match act {
                    FusedActivation::Identity => true,
                    FusedActivation::Relu => v > 0.0,
                    FusedActivation::Relu6 => v > 0.0 && v < 6.0,
                };
                for k in 0..cells {
                    want[ix[k] as usize] += if passes(y[k]) { dy[k] } else { 0.0 };
                }
                let mut got = vec![f32::NAN; h * w];
                unpool_plane(&mut got, &ix, &y, &dy, act, &pool);
                assert_eq!(got, want, "{h}x{w} {act:?}");
                let dy64: Vec<f64> = dy.iter().map(|&v| v as f64).collect();
                let y64: Vec<f64> = y.iter().map(|&v| v as f64).collect();
                let mut got64 = vec![f64::NAN; h * w];
                unpool_plane(&mut got64, &ix, &y64, &dy64, act, &pool);
                assert!(got64.iter().zip(&want).all(|(a, b)| *a == *b as f64), "{h}x{w} {act:?} (f64)");
            }
        }
    }
}
