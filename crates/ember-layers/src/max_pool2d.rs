//! Max pooling layer.

use candle_core::{Result, Tensor};
use candle_nn::Module;
use ember_kernels::Pool2dParams;

use crate::image_batch::check_image_batch;

/// 2-D max pooling (no parameters). Gradients go to the first maximum of each window, as in
/// PyTorch, and accumulate where windows overlap.
///
/// # Shapes
/// - input: `(b, c, h, w)`
/// - output: `(b, c, (h + 2p - k) / s + 1, (w + 2p - k) / s + 1)`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d {
    params: Pool2dParams,
}

impl MaxPool2d {
    /// The window geometry.
    pub fn params(&self) -> Pool2dParams {
        self.params
    }

    /// A `kernel x kernel` window moved by `stride` with `padding` on every side.
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Self {
        Self { params: Pool2dParams::square_window(kernel, stride, padding) }
    }
}

impl Module for MaxPool2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        check_image_batch("max_pool2d", xs)?;
        ember_kernels::max_pool2d(xs, self.params)
    }
}
