//! 2-D and 1-D convolution and transposed convolution: the entry points ember-layers use.

use candle_core::{Result, Tensor};

use crate::activation::{activate, FusedActivation};
use crate::conv2d_gemm::Conv2dOp;
use crate::conv_geometry::{Conv2dParams, ConvGeometry, Padding2d};
use crate::max_pool::{max_pool2d, Pool2dParams};
use crate::no_grad;

/// 2-D convolution with an optional per-channel bias.
///
/// # Shapes
/// - `xs`: `(b, c_in, h, w)`
/// - `weight`: `(c_out, c_in / groups, kh, kw)`
/// - `bias`: `(c_out,)`
/// - output: `(b, c_out, (h + 2p - d(kh-1) - 1) / s + 1, ...)`
///
/// f32/f64 CPU tensors go through ember's im2col + GEMM kernel (forward and backward in one op
/// each, bias gradient fused, no input gradient computed for data that needs none); other dtypes
/// and devices use candle's convolution.
pub fn conv2d(xs: &Tensor, weight: &Tensor, bias: Option<&Tensor>, p: Conv2dParams) -> Result<Tensor> {
    conv2d_with_activation(xs, weight, bias, p, FusedActivation::Identity)
}

/// [`conv2d`] followed by an activation, fused into the same op: the activation is applied to
/// each output image while it is in cache, and the backward pass masks the incoming gradient
/// itself (no separate activation tensor or gradient).
pub fn conv2d_with_activation(
    xs: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    p: Conv2dParams,
    act: FusedActivation,
) -> Result<Tensor> {
    conv2d_activation_max_pool(xs, weight, bias, p, act, None)
}

/// `max_pool2d(act(conv2d(xs, weight) + bias))` as one op when `pool` is given: the
/// full-resolution activation is produced and pooled one image at a time, in cache, and never
/// becomes a tensor; backward routes the pooled gradient through the recorded argmax and the
/// activation's derivative straight into the convolution's gradients. Values and gradients equal
/// those of the three separate ops (PyTorch's first-maximum routing). Depthwise convolutions,
/// other dtypes and devices run the ops separately.
pub fn conv2d_activation_max_pool(
    xs: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    p: Conv2dParams,
    act: FusedActivation,
    pool: Option<Pool2dParams>,
) -> Result<Tensor> {
    conv2d_activation_max_pool_t(xs, weight, bias, p, act, pool, true)
}

/// [`conv2d_activation_max_pool`] with candle's `forward_t` flag: with `train = false` the op
/// does not record the pool's argmax (inference: less memory written, a faster forward pass).
/// Gradients through such an output are still right: the backward pass recomputes the argmax
/// first, at the cost of one more forward pass.
pub fn conv2d_activation_max_pool_t(
    xs: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    p: Conv2dParams,
    act: FusedActivation,
    pool: Option<Pool2dParams>,
    train: bool,
) -> Result<Tensor> {
    conv2d_padded_t(xs, weight, bias, p, Padding2d::uniform(p.padding), act, pool, train)
}

/// [`conv2d_activation_max_pool_t`] with the padding given side by side (`p.padding` is
/// ignored): TensorFlow's "same" padding with a stride ([`Padding2d::same`]) pads one more row or
/// column at the end. Depthwise convolutions on f32/f64 CPU tensors read uneven padding in place
/// (no padded copy of the input is made); the other kernels get an explicitly padded input.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_padded_t(
    xs: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    p: Conv2dParams,
    pad: Padding2d,
    act: FusedActivation,
    pool: Option<Pool2dParams>,
    train: bool,
) -> Result<Tensor> {
    // Under no_grad the output must not record (and keep alive) its inputs.
    let (xs, weight, bias) = (&no_grad::input(xs), &no_grad::input(weight), bias.map(no_grad::input));
    let bias = bias.as_ref();
    let g = ConvGeometry::padded(xs.shape(), weight.shape(), p, pad)?;
    let native = crate::portable::native(xs);
    let depthwise = crate::depthwise::applies(&g);
    let Some(padding) = pad.symmetric() else {
        if pool.is_some() || !native || !depthwise {
            // Only the depthwise kernel reads uneven padding; the others get it explicitly.
            let xs = xs.pad_with_zeros(2, pad.top, pad.bottom)?.pad_with_zeros(3, pad.left, pad.right)?;
            return conv2d_activation_max_pool_t(&xs, weight, bias, Conv2dParams { padding: 0, ..p }, act, pool, train);
        }
        let op = Conv2dOp::new(Conv2dParams { padding: 0, ..p }, act, None, train).with_padding(pad);
        return apply_conv_op(xs, weight, bias, &g, op);
    };
    let p = Conv2dParams { padding, ..p };
    if !native || (pool.is_some() && depthwise) {
        let ys = if native {
            conv2d_activation_max_pool(xs, weight, bias, p, act, None)?
        } else {
            activate(&candle_conv2d(xs, weight, bias, p)?, act)?
        };
        return match pool {
            Some(pool) => max_pool2d(&ys, pool),
            None => Ok(ys),
        };
    }
    if let Some(pool) = pool {
        pool.output_size(g.oh, g.ow)?;
    }
    apply_conv_op(xs, weight, bias, &g, Conv2dOp::new(p, act, pool, train))
}

/// Checks the bias against the geometry and runs ember's convolution op on contiguous operands.
fn apply_conv_op(
    xs: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    g: &ConvGeometry,
    op: Conv2dOp,
) -> Result<Tensor> {
    if let Some(bias) = bias {
        if bias.dims() != [g.o] {
            candle_core::bail!("conv2d: bias shape {:?}, expected ({},)", bias.dims(), g.o)
        }
    }
    let (xs, weight) = (xs.contiguous()?, weight.contiguous()?);
    match bias {
        Some(bias) => xs.apply_op3(&weight, &bias.contiguous()?, op),
        None => xs.apply_op2(&weight, op),
    }
}

/// candle's own convolution (any dtype or device), with ember's fix for strided windows that
/// leave the last rows unused.
pub fn candle_conv2d(xs: &Tensor, weight: &Tensor, bias: Option<&Tensor>, p: Conv2dParams) -> Result<Tensor> {
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
    let ys = if p.stride > 1 && (unused(h, rh) != 0 || unused(w, rw) != 0) {
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
