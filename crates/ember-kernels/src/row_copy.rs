//! Copies of short rows (a few dozen elements): the inner step of im2col and of the direct
//! convolution's padding and compaction. `copy_from_slice` (and any copy loop, which LLVM turns
//! into one) costs a `memcpy` call per row, more than the copy itself at these lengths; on
//! AVX-512 CPUs an f32 row goes through vector loads and stores, the tail masked, instead.

use crate::element::{as_f32, as_f32_mut, has_avx512f, Float};

/// `dst.copy_from_slice(src)` for short rows.
///
/// # Panics
/// When the lengths differ (a kernel bug, as with `copy_from_slice`).
#[inline]
pub(crate) fn copy_row<T: Float>(dst: &mut [T], src: &[T]) {
    assert_eq!(dst.len(), src.len(), "copy_row: length mismatch");
    #[cfg(target_arch = "x86_64")]
    if has_avx512f() {
        if let (Some(s), Some(d)) = (as_f32(src), as_f32_mut(dst)) {
            // SAFETY: AVX-512F is present; the lengths are equal (asserted above).
            unsafe { copy_f32_avx512(d, s) };
            return;
        }
    }
    dst.copy_from_slice(src);
}

/// # Safety
/// AVX-512F must be available and `d.len() == s.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn copy_f32_avx512(d: &mut [f32], s: &[f32]) {
    use std::arch::x86_64::*;
    const LANES: usize = 16;
    let n = d.len();
    let mut i = 0;
    // SAFETY: every full vector lies below `n`; the tail's masked lanes are neither read nor
    // written (masked loads do not fault on them).
    unsafe {
        while i + LANES <= n {
            _mm512_storeu_ps(d.as_mut_ptr().add(i), _mm512_loadu_ps(s.as_ptr().add(i)));
            i += LANES;
        }
        if i < n {
            let mask = ((1u32 << (n - i)) - 1) as __mmask16;
            _mm512_mask_storeu_ps(d.as_mut_ptr().add(i), mask, _mm512_maskz_loadu_ps(mask, s.as_ptr().add(i)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_every_length_exactly_and_nothing_past_it() {
        for n in 0..50 {
            let src: Vec<f32> = (0..n).map(|i| i as f32 + 0.5).collect();
            let mut dst = vec![-1f32; n + 3];
            copy_row(&mut dst[1..n + 1], &src);
            assert_eq!(&dst[1..n + 1], &src[..], "n = {n}");
            assert!(dst[0] == -1.0 && dst[n + 1..].iter().all(|&v| v == -1.0), "n = {n}: wrote outside the row");
            let src64: Vec<f64> = src.iter().map(|&v| v as f64).collect();
            let mut dst64 = vec![0f64; n];
            copy_row(&mut dst64, &src64);
            assert_eq!(dst64, src64);
        }
    }
}
