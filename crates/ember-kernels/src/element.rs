//! The float element types ember's hand-written kernels are generic over (f32 and f64).

use std::ops::{Add, AddAssign, Mul, Sub};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Result};

/// An f32 or f64 element: arithmetic, conversions and access to candle's CPU storage.
pub(crate) trait Float:
    Copy + Send + Sync + 'static + PartialOrd + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + AddAssign
{
    const ZERO: Self;
    const ONE: Self;
    const NEG_INFINITY: Self;
    fn is_nan(self) -> bool;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    /// The storage's elements when it holds this type.
    fn slice(storage: &CpuStorage) -> Option<&[Self]>;
    /// Wraps a vector into candle's CPU storage.
    fn wrap(data: Vec<Self>) -> CpuStorage;
}

macro_rules! impl_float {
    ($t:ty, $variant:ident) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            #[inline]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn slice(storage: &CpuStorage) -> Option<&[Self]> {
                match storage {
                    CpuStorage::$variant(d) => Some(d),
                    _ => None,
                }
            }
            fn wrap(data: Vec<Self>) -> CpuStorage {
                CpuStorage::$variant(data)
            }
        }
    };
}

impl_float!(f32, F32);
impl_float!(f64, F64);

/// The contiguous elements a layout addresses, or an error naming `op` and `what`.
pub(crate) fn contiguous_slice<'a, T: Float>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
    what: &str,
) -> Result<&'a [T]> {
    let Some(data) = T::slice(storage) else {
        candle_core::bail!("{op}: {what} has dtype {:?}, expected the other operands' dtype", storage.dtype())
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: {what} must be contiguous"),
    }
}

/// Sum of a slice in 16 independent lanes (vectorises; a plain fold is one long dependency
/// chain of scalar additions).
#[inline]
pub(crate) fn sum<T: Float>(v: &[T]) -> T {
    let mut lanes = [T::ZERO; 16];
    let mut chunks = v.chunks_exact(16);
    for c in &mut chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            *l += *x;
        }
    }
    let mut s = T::ZERO;
    for x in chunks.remainder() {
        s += *x;
    }
    for l in lanes {
        s += l;
    }
    s
}

/// The slice as f32 when `T` is f32 (for kernels with an f32-only vectorised path).
pub(crate) fn as_f32<T: Float>(s: &[T]) -> Option<&[f32]> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // SAFETY: T is f32, so the slice's memory is a valid [f32] of the same length.
        Some(unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len()) })
    } else {
        None
    }
}

/// The mutable slice as f32 when `T` is f32.
pub(crate) fn as_f32_mut<T: Float>(s: &mut [T]) -> Option<&mut [f32]> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // SAFETY: as in `as_f32`; the borrow is carried over.
        Some(unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<f32>(), s.len()) })
    } else {
        None
    }
}

/// Whether this CPU has AVX-512F (checked once).
pub(crate) fn has_avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *SUPPORTED.get_or_init(|| std::is_x86_feature_detected!("avx512f"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs `f` inside a function compiled for AVX-512 when the CPU has it (checked once), so that
/// `f`'s loops are vectorised for 512-bit registers where LLVM inlines `f` there; elsewhere `f`
/// runs as compiled for the baseline. One binary serves every x86-64. LLVM inlines small closure
/// bodies but leaves large ones out of line (in baseline code): check `perf annotate` for 512-bit
/// registers, and give a large per-plane function its own `#[target_feature]` copy instead.
#[inline(always)]
pub(crate) fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if has_avx512f() {
        #[target_feature(enable = "avx512f")]
        unsafe fn call<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: AVX-512F is available (checked just above), the function's only requirement.
        return unsafe { call(f) };
    }
    f()
}

/// Elements from which [`zeroed`] clears a buffer on every rayon thread (1 MiB of f32).
const PARALLEL_ZEROING_MIN: usize = 1 << 18;

/// `vec![T::ZERO; n]`, cleared in parallel when large. A training step allocates its outputs
/// and gradients on the calling thread, and clearing them there left the other cores idle:
/// `memset` on the main thread was 3.7 % of a ResNet-18 step's samples, ~7 % of its wall time.
pub(crate) fn zeroed<T: Float>(n: usize) -> Vec<T> {
    if n < PARALLEL_ZEROING_MIN || rayon::current_num_threads() < 2 {
        return vec![T::ZERO; n];
    }
    use rayon::prelude::*;
    let mut v: Vec<T> = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n].par_chunks_mut(PARALLEL_ZEROING_MIN / 4).for_each(|chunk| {
        for x in chunk {
            x.write(T::ZERO);
        }
    });
    // SAFETY: the loop above wrote every one of the first `n` elements of the capacity.
    unsafe { v.set_len(n) };
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_buffers_are_all_zero_on_one_thread_and_several() {
        let sizes = [0, 5, PARALLEL_ZEROING_MIN - 1, PARALLEL_ZEROING_MIN, 3 * PARALLEL_ZEROING_MIN + 7];
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            for n in sizes {
                // Dirty the heap first, so a reused allocation would show leftovers.
                drop(vec![7f32; n]);
                let v: Vec<f32> = pool.install(|| zeroed(n));
                assert_eq!(v.len(), n);
                assert!(v.iter().all(|x| x.to_bits() == 0), "{n} elements on {threads} threads");
                let d: Vec<f64> = pool.install(|| zeroed(n));
                assert!(d.len() == n && d.iter().all(|x| x.to_bits() == 0));
            }
        }
    }
}
