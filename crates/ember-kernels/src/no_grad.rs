//! Forward passes without a gradient graph, PyTorch's `torch.no_grad()` for ember's kernels.
//!
//! candle records every op whose input is a variable (a model's weights), and each recorded
//! output keeps its inputs alive until it is dropped: an evaluation forward pass kept every
//! activation of the batch until the logits were dropped, as training does (a 224 px
//! EfficientNet-Lite0 batch of 27 images held 5 GB). Under [`no_grad`] the convolution and
//! linear kernels detach their inputs, so their outputs record nothing and each activation is
//! freed as soon as the next layer has read it.

use std::cell::Cell;

use candle_core::Tensor;

thread_local! {
    static NO_GRAD: Cell<bool> = const { Cell::new(false) };
}

/// While the returned guard lives, ember's convolution and linear kernels called on this thread
/// record no gradient graph. Guards nest; dropping one restores what was before it.
///
/// ```
/// use candle_core::{Device, Tensor, Var};
///
/// let w = Var::ones((2, 3), candle_core::DType::F32, &Device::Cpu)?;
/// let x = Tensor::ones((4, 3), candle_core::DType::F32, &Device::Cpu)?;
/// let act = ember_kernels::FusedActivation::Identity;
/// assert!(ember_kernels::linear(&x, w.as_tensor(), None, act)?.track_op());
/// {
///     let _inference = ember_kernels::no_grad();
///     assert!(!ember_kernels::grad_enabled());
///     assert!(!ember_kernels::linear(&x, w.as_tensor(), None, act)?.track_op());
/// }
/// assert!(ember_kernels::grad_enabled());
/// # Ok::<(), candle_core::Error>(())
/// ```
#[must_use = "gradients are off only while the guard lives"]
pub fn no_grad() -> NoGradGuard {
    NoGradGuard { previous: NO_GRAD.replace(true) }
}

/// Restores gradient recording when dropped; see [`no_grad`].
#[derive(Debug)]
pub struct NoGradGuard {
    previous: bool,
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        NO_GRAD.set(self.previous);
    }
}

/// Whether ember's kernels record gradients on this thread (`false` under [`no_grad`]).
pub fn grad_enabled() -> bool {
    !NO_GRAD.get()
}

/// `t` detached under [`no_grad`], else `t` itself.
pub(crate) fn input(t: &Tensor) -> Tensor {
    if grad_enabled() {
        t.clone()
    } else {
        t.detach()
    }
}
