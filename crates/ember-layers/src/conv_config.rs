//! The settings every convolution layer takes: PyTorch's `nn.Conv1d` and `nn.Conv2d`
//! arguments, which are the same for both.

use ember_kernels::Conv2dParams;

use crate::weight_init::WeightInit;

/// Configuration of a convolution layer, [`crate::Conv1d`] (as [`crate::Conv1dConfig`]) or
/// [`crate::Conv2d`] (as [`crate::Conv2dConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvConfig {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel size: the window's length (1-D) or side (2-D, a square window).
    pub kernel: usize,
    /// Padding, stride, dilation and groups (the same meaning in 1-D and 2-D).
    pub params: Conv2dParams,
    /// Whether the layer adds a learned per-channel bias.
    pub bias: bool,
    /// `padding="same"`: with stride 1, PyTorch's (the output has the input's size); with a
    /// stride `s`, TensorFlow's and Keras's (the output has `ceil(size / s)` positions). Odd
    /// totals put the extra row/column at the end. `params.padding` is ignored.
    pub same_padding: bool,
    /// Initialisation of new parameters (PyTorch's by default).
    pub init: WeightInit,
}

impl ConvConfig {
    /// `c_in -> c_out` with a window of `kernel`, stride 1, no padding, with bias, PyTorch's
    /// initialisation.
    pub fn new(c_in: usize, c_out: usize, kernel: usize) -> Self {
        Self {
            c_in,
            c_out,
            kernel,
            params: Conv2dParams::default(),
            bias: true,
            same_padding: false,
            init: WeightInit::PyTorch,
        }
    }
}
