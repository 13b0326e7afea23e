//! Which path an op takes: ember's CPU kernel, or the portable path built from candle's ops that
//! every device (CUDA, Metal) runs.
//!
//! The portable path is what a GPU executes, so it has to be right without a GPU to check it
//! on. [`with_portable_ops`] forces it on the CPU for the calling thread, which lets a test run
//! a whole model both ways on this machine and compare forward values and gradients.

use std::cell::Cell;

use candle_core::{DType, Tensor};

thread_local! {
    /// Set while [`with_portable_ops`] runs on this thread.
    static FORCED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every ember op on this thread taking its portable path (candle's ops, as on a
/// GPU) even for CPU tensors, and restores the previous setting afterwards, also when `f`
/// panics.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use ember_kernels::{relu, with_portable_ops};
///
/// let x = Tensor::new(&[-1f32, 2.0], &Device::Cpu)?;
/// let portable = with_portable_ops(|| relu(&x))?;
/// assert_eq!(portable.to_vec1::<f32>()?, relu(&x)?.to_vec1::<f32>()?);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn with_portable_ops<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED.with(|forced| forced.set(self.0));
        }
    }
    let _restore = Restore(FORCED.with(|forced| forced.replace(true)));
    f()
}

/// Whether the portable path is forced on this thread ([`with_portable_ops`]).
pub fn portable_ops_forced() -> bool {
    FORCED.with(Cell::get)
}

/// Whether ember's CPU kernels handle `xs`: an f32/f64 tensor on the CPU, and the portable path
/// not forced.
pub(crate) fn native(xs: &Tensor) -> bool {
    xs.device().is_cpu() && matches!(xs.dtype(), DType::F32 | DType::F64) && !portable_ops_forced()
}
