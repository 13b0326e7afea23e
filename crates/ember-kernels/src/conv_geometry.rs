//! The shape side of a 2-D convolution, shared by every convolution kernel (im2col + GEMM,
//! direct, depthwise) and the entry points that choose between them: the user-facing
//! [`Conv2dParams`], the checked sizes of one call ([`ConvGeometry`]), and which gradients a
//! backward pass computes ([`Needs`], [`ConvGrads`]). A leaf module: it imports no other module
//! of the crate, so the kernels depend on it and never on each other's files for these types.

use candle_core::{Result, Shape};

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

/// Zero padding given side by side, for the padding [`Conv2dParams::padding`] cannot express:
/// TensorFlow's and Keras's `padding="same"` with a stride puts one more row or column at the
/// end than at the start (see [`Padding2d::same`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Padding2d {
    /// Rows added above.
    pub top: usize,
    /// Rows added below.
    pub bottom: usize,
    /// Columns added on the left.
    pub left: usize,
    /// Columns added on the right.
    pub right: usize,
}

impl Padding2d {
    /// `p` on every side.
    pub fn uniform(p: usize) -> Self {
        Self { top: p, bottom: p, left: p, right: p }
    }

    /// TensorFlow's "same" padding of an `h x w` input for a `kh x kw` kernel: the output has
    /// `ceil(h / stride) x ceil(w / stride)` positions, and the padding this needs is split with
    /// the odd one at the bottom/right. With stride 1 this is PyTorch's `padding="same"`.
    pub fn same(h: usize, w: usize, kh: usize, kw: usize, stride: usize, dilation: usize) -> Self {
        let side = |size: usize, k: usize| {
            let out = size.div_ceil(stride.max(1));
            let reach = dilation * k.saturating_sub(1) + 1;
            let total = (out.saturating_sub(1) * stride + reach).saturating_sub(size);
            (total / 2, total - total / 2)
        };
        let ((top, bottom), (left, right)) = (side(h, kh), side(w, kw));
        Self { top, bottom, left, right }
    }

    /// The padding when it is the same on every side.
    pub fn symmetric(&self) -> Option<usize> {
        (self.top == self.bottom && self.left == self.right && self.top == self.left).then_some(self.top)
    }
}

/// Sizes of one convolution.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvGeometry {
    pub b: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub oh: usize,
    pub ow: usize,
    /// `p.padding` is the padding only where `pad` is uniform; kernels that take uneven
    /// padding read `pad`, the others are never handed it.
    pub p: Conv2dParams,
    pub pad: Padding2d,
}

impl ConvGeometry {
    /// Checks input and weight shapes against the parameters (the kernels' unit tests; the
    /// entry points go through [`ConvGeometry::padded`]).
    #[cfg(test)]
    pub fn new(x: &Shape, weight: &Shape, p: Conv2dParams) -> Result<Self> {
        Self::padded(x, weight, p, Padding2d::uniform(p.padding))
    }

    /// [`ConvGeometry::new`] with the padding given side by side (`p.padding` is ignored).
    pub fn padded(x: &Shape, weight: &Shape, p: Conv2dParams, pad: Padding2d) -> Result<Self> {
        let (b, c, h, w) = x.dims4()?;
        let (o, cg, kh, kw) = weight.dims4()?;
        if p.groups == 0 || p.stride == 0 || p.dilation == 0 {
            candle_core::bail!("conv2d: groups, stride and dilation must be positive, got {p:?}")
        }
        if c % p.groups != 0 || o % p.groups != 0 || cg * p.groups != c {
            candle_core::bail!(
                "conv2d: input {:?} and weight {:?} do not fit {} groups",
                x.dims(),
                weight.dims(),
                p.groups
            )
        }
        let reach = |k: usize| p.dilation * (k - 1) + 1;
        let padded = |size: usize, before: usize, after: usize| size.checked_add(before)?.checked_add(after);
        let (Some(ph), Some(pw)) = (padded(h, pad.top, pad.bottom), padded(w, pad.left, pad.right)) else {
            candle_core::bail!("conv2d: input {h}x{w} with padding {pad:?} overflows the size type")
        };
        if kh == 0 || kw == 0 || ph < reach(kh) || pw < reach(kw) {
            candle_core::bail!(
                "conv2d: input {h}x{w} with padding {pad:?} is smaller than the kernel reach {}x{}",
                reach(kh),
                reach(kw)
            )
        }
        let oh = (ph - reach(kh)) / p.stride + 1;
        let ow = (pw - reach(kw)) / p.stride + 1;
        Ok(Self { b, c, h, w, o, kh, kw, oh, ow, p, pad })
    }

    pub fn cg(&self) -> usize {
        self.c / self.p.groups
    }
    pub fn og(&self) -> usize {
        self.o / self.p.groups
    }
    /// Rows of `col`: input channels per group times kernel taps.
    pub fn ck(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    pub fn ohw(&self) -> usize {
        self.oh * self.ow
    }
    pub fn in_image(&self) -> usize {
        self.c * self.h * self.w
    }
    pub fn out_image(&self) -> usize {
        self.o * self.ohw()
    }
    /// 1x1, stride 1, no padding: the input group is its own `col`.
    pub fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.p.stride == 1 && self.p.padding == 0
    }
    pub fn out_shape(&self) -> Shape {
        Shape::from((self.b, self.o, self.oh, self.ow))
    }
    /// Output columns `ox` whose input column `ox * s + offset` lies in `[0, len)`.
    pub fn valid_range(&self, offset: isize, len: usize, out: usize) -> (usize, usize) {
        let s = self.p.stride as isize;
        let lo = if offset < 0 { ((-offset + s - 1) / s) as usize } else { 0 };
        let last = len as isize - 1 - offset;
        let hi = if last < 0 { 0 } else { ((last / s) as usize + 1).min(out) };
        (lo.min(hi), hi)
    }
}

/// Which gradients to compute.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Needs {
    pub x: bool,
    pub weight: bool,
    pub bias: bool,
}

/// Gradients of a convolution; `None` where the operand does not need one.
pub(crate) struct ConvGrads<T> {
    pub x: Option<Vec<T>>,
    pub weight: Option<Vec<T>>,
    pub bias: Option<Vec<T>>,
}
