//! Average pooling layer.

use candle_core::{Result, Tensor};
use candle_nn::Module;
use ember_kernels::Pool2dParams;

use crate::image_batch::check_image_batch;

/// 2-D average pooling (no parameters), PyTorch's `nn.AvgPool2d` with `count_include_pad=True`:
/// padded cells count as zeros in every window's divisor. Windows may overlap (kernel ≠
/// stride); the gradient is exact in every case.
///
/// # Shapes
/// - input: `(b, c, h, w)`
/// - output: `(b, c, (h + 2p - k) / s + 1, (w + 2p - k) / s + 1)`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvgPool2d {
    params: Pool2dParams,
}

impl AvgPool2d {
    /// A `kernel x kernel` window moved by `stride` with `padding` on every side.
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Self {
        Self { params: Pool2dParams::square_window(kernel, stride, padding) }
    }
}

impl Module for AvgPool2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        check_image_batch("avg_pool2d", xs)?;
        ember_kernels::avg_pool2d(xs, self.params)
    }
}
