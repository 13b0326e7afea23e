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
    let (_, _, h, w) = xs.dims4()?;
    let (_, _, kh, kw) = weight.dims4()?;
    let reach = |k: usize| p.dilation * (k - 1) + 1;
    let (rh, rw) = (reach(kh), reach(kw));
    if h + 2 * p.padding < rh || w + 2 * p.padding < rw {
        candle_core::bail!(
            "conv2d: input {h}x{w} with padding {} is smaller than the kernel reach {rh}x{rw}",
            p.padding
        )
    }
    let unused = |n: usize, r: usize| (n + 2 * p.padding - r) % p.stride;
    let (c_in, c_out) = (xs.dim(1)?, weight.dim(0)?);
    let ys = if p.groups > 1 && p.groups == c_in && c_out == c_in && weight.dim(1)? == 1 {
        depthwise_conv2d(xs, weight, p)?
    } else if p.stride > 1 && (unused(h, rh) != 0 || unused(w, rw) != 0) {
        // candle's conv2d backward assumes the strided windows use every input row and column;
        // when the last few are never reached it returns an input gradient of the wrong size.
        // Pad explicitly and cut the input to exactly the rows and columns the windows read, so
        // the gradient flows back through `pad`/`narrow` and has the input's shape.
        let padded = xs.pad_with_zeros(2, p.padding, p.padding)?.pad_with_zeros(3, p.padding, p.padding)?;
        let cut =
            padded.narrow(2, 0, h + 2 * p.padding - unused(h, rh))?.narrow(3, 0, w + 2 * p.padding - unused(w, rw))?;
        cut.conv2d(weight, 0, p.stride, p.dilation, p.groups)?
    } else {
        xs.conv2d(weight, p.padding, p.stride, p.dilation, p.groups)?
    };
    match bias {
        None => Ok(ys),
        Some(bias) => {
            let c_out = bias.dims1()?;
            ys.broadcast_add(&bias.reshape((1, c_out, 1, 1))?)
        }
    }
}

/// Depthwise convolution (`groups = c_in = c_out`) as a sum over the `kh x kw` kernel taps of
/// shifted input windows times a per-channel weight. candle computes grouped convolutions one
/// group at a time (a narrow, a convolution and a concatenation per channel, forward and
/// backward), which costs thousands of tiny operations per layer in MobileNet/EfficientNet
/// blocks; this costs `3 kh kw` whole-tensor operations, and autograd goes through
/// `pad`/`narrow`/`mul`/`add`, so gradients are exact. A stride is applied by computing the
/// stride-1 result and keeping every `stride`-th row and column.
fn depthwise_conv2d(xs: &Tensor, weight: &Tensor, p: Conv2dParams) -> Result<Tensor> {
    let (b, c, h, w) = xs.dims4()?;
    let (_, _, kh, kw) = weight.dims4()?;
    let padded = xs.pad_with_zeros(2, p.padding, p.padding)?.pad_with_zeros(3, p.padding, p.padding)?;
    let (hp, wp) = (h + 2 * p.padding, w + 2 * p.padding);
    let (oh1, ow1) = (hp - p.dilation * (kh - 1), wp - p.dilation * (kw - 1));
    let mut acc: Option<Tensor> = None;
    for i in 0..kh {
        for j in 0..kw {
            let window = padded.narrow(2, i * p.dilation, oh1)?.narrow(3, j * p.dilation, ow1)?;
            let tap = weight.narrow(2, i, 1)?.narrow(3, j, 1)?.reshape((1, c, 1, 1))?;
            let term = window.broadcast_mul(&tap)?;
            acc = Some(match acc {
                None => term,
                Some(a) => (a + term)?,
            });
        }
    }
    let full = match acc {
        Some(a) => a,
        None => candle_core::bail!("depthwise conv2d: empty kernel"),
    };
    if p.stride == 1 {
        return Ok(full);
    }
    let s = p.stride;
    let (oh, ow) = ((oh1 - 1) / s + 1, (ow1 - 1) / s + 1);
    // Keep rows 0, s, 2s, ...: pad to a multiple of s, fold the stride into its own axis, take
    // index 0 of it.
    let rows = full.pad_with_zeros(2, 0, oh * s - oh1)?.reshape((b, c, oh, s, ow1))?.narrow(3, 0, 1)?;
    let rows = rows.reshape((b, c, oh, ow1))?;
    let cols = rows.pad_with_zeros(3, 0, ow * s - ow1)?.reshape((b, c, oh, ow, s))?.narrow(4, 0, 1)?;
    cols.reshape((b, c, oh, ow))
}

/// 1-D convolution, computed as a 2-D convolution over a height-1 image so that strided and
/// grouped cases share [`conv2d`]'s fixes.
///
/// # Shapes
/// - `xs`: `(b, c_in, l)`
/// - `weight`: `(c_out, c_in / groups, k)`
/// - `bias`: `(c_out,)`
/// - output: `(b, c_out, (l + 2p - d(k-1) - 1) / s + 1)`
pub fn conv1d(xs: &Tensor, weight: &Tensor, bias: Option<&Tensor>, p: Conv2dParams) -> Result<Tensor> {
    xs.dims3()?;
    weight.dims3()?;
    // Pad the length explicitly: `conv2d`'s padding would also pad the height-1 axis.
    let xs = xs.pad_with_zeros(2, p.padding, p.padding)?.unsqueeze(2)?;
    let ys = conv2d(&xs, &weight.unsqueeze(2)?, bias, Conv2dParams { padding: 0, ..p })?;
    ys.squeeze(2)
}

/// Geometry of a transposed 2-D convolution (PyTorch's `nn.ConvTranspose2d`, one group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvTranspose2dParams {
    /// Rows and columns removed from each side of the full output.
    pub padding: usize,
    /// Extra rows and columns added on the bottom/right of the output (`< stride`).
    pub output_padding: usize,
    /// Step of the kernel in the output.
    pub stride: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
}

impl Default for ConvTranspose2dParams {
    fn default() -> Self {
        Self { padding: 0, output_padding: 0, stride: 1, dilation: 1 }
    }
}

/// Transposed 2-D convolution (the gradient of [`conv2d`] with respect to its input) with an
/// optional per-channel bias.
///
/// # Shapes
/// - `xs`: `(b, c_in, h, w)`
/// - `weight`: `(c_in, c_out, kh, kw)`
/// - `bias`: `(c_out,)`
/// - output: `(b, c_out, (h - 1)s - 2p + d(kh - 1) + output_padding + 1, ...)`
pub fn conv_transpose2d(
    xs: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    p: ConvTranspose2dParams,
) -> Result<Tensor> {
    xs.dims4()?;
    weight.dims4()?;
    if p.output_padding >= p.stride.max(p.dilation) {
        candle_core::bail!(
            "conv_transpose2d: output padding {} must be smaller than the stride {} or the dilation {}",
            p.output_padding,
            p.stride,
            p.dilation
        )
    }
    let ys = xs.conv_transpose2d(weight, p.padding, p.output_padding, p.stride, p.dilation)?;
    match bias {
        None => Ok(ys),
        Some(bias) => {
            let c_out = bias.dims1()?;
            ys.broadcast_add(&bias.reshape((1, c_out, 1, 1))?)
        }
    }
}
