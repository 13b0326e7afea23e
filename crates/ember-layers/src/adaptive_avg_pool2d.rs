//! Adaptive and global average pooling.

use candle_core::{Result, Tensor};
use candle_nn::Module;

use crate::image_batch::check_image_batch;

/// Average pooling to a fixed output size whatever the input size, PyTorch's
/// `nn.AdaptiveAvgPool2d`: output cell `i` averages input rows `floor(i*h/oh) .. ceil((i+1)*h/oh)`.
///
/// # Shapes
/// - input: `(b, c, h, w)`
/// - output: `(b, c, oh, ow)`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveAvgPool2d {
    output: (usize, usize),
}

impl AdaptiveAvgPool2d {
    /// Pools to `output = (oh, ow)`.
    pub fn new(output: (usize, usize)) -> Self {
        Self { output }
    }
}

impl Module for AdaptiveAvgPool2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        check_image_batch("adaptive_avg_pool2d", xs)?;
        ember_kernels::adaptive_avg_pool2d(xs, self.output)
    }
}

/// Global average pooling: the mean of every channel, flattened (`AdaptiveAvgPool2d(1)`
/// followed by `Flatten`).
///
/// # Shapes
/// - input: `(b, c, h, w)`
/// - output: `(b, c)`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GlobalAvgPool2d;

impl Module for GlobalAvgPool2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        check_image_batch("global_avg_pool2d", xs)?;
        ember_kernels::global_avg_pool2d(xs)
    }
}
