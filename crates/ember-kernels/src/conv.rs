//! 2-D convolution: the single entry point ember-layers use.

use candle_core::{Result, Tensor};

/// Geometry of a 2-D convolution (the same meaning as in PyTorch's `nn.Conv2d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dParams {
    /// Zero padding added on every side.
    pub padding: usize,
    /// Step between two applications of the kernel.
    pub stride: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
    /// Number of channel groups (`c_in` for a depthwise convolution).
    pub groups: usize,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Self { padding: 0, stride: 1, dilation: 1, groups: 1 }
    }
}

/// 2-D convolution with an optional per-channel bias.
///
/// # Shapes
/// - `xs`: `(b, c_in, h, w)`
/// - `weight`: `(c_out, c_in / groups, kh, kw)`
/// - `bias`: `(c_out,)`
/// - output: `(b, c_out, (h + 2p - d(kh-1) - 1) / s + 1, ...)`
///
/// Today this delegates to candle's convolution; it is the seam where a faster kernel goes.
pub fn conv2d(xs: &Tensor, weight: &Tensor, bias: Option<&Tensor>, p: Conv2dParams) -> Result<Tensor> {
    let ys = xs.conv2d(weight, p.padding, p.stride, p.dilation, p.groups)?;
    match bias {
        None => Ok(ys),
        Some(bias) => {
            let c_out = bias.dims1()?;
            ys.broadcast_add(&bias.reshape((1, c_out, 1, 1))?)
        }
    }
}
