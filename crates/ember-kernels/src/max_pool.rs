//! 2-D max pooling with a correct backward pass.
//!
//! candle's own max-pool backward spreads the gradient over every element equal to the window
//! maximum after nearest-neighbour upsampling, which gives wrong gradients for lone maxima and
//! has no support for overlapping windows. This kernel routes each output gradient to exactly
//! one input element, the first maximum of its window in row-major order (PyTorch's rule),
//! and accumulates where windows overlap.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Window geometry of a 2-D pooling layer, `(height, width)` pairs as in PyTorch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2dParams {
    /// Window size.
    pub kernel: (usize, usize),
    /// Step between windows.
    pub stride: (usize, usize),
    /// Implicit padding on each side (padded cells never win the maximum).
    pub padding: (usize, usize),
}

impl Pool2dParams {
    /// A `k x k` window with stride `k` and no padding (the classic non-overlapping pool).
    pub fn square(k: usize) -> Self {
        Self { kernel: (k, k), stride: (k, k), padding: (0, 0) }
    }

    /// Output height and width for an input of `h x w`, or an error naming the bad geometry.
    pub fn output_size(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        let (kh, kw) = self.kernel;
        let (sh, sw) = self.stride;
        let (ph, pw) = self.padding;
        if kh == 0 || kw == 0 || sh == 0 || sw == 0 {
            candle_core::bail!("pool2d: kernel {:?} and stride {:?} must be positive", self.kernel, self.stride)
        }
        if ph * 2 > kh || pw * 2 > kw {
            candle_core::bail!("pool2d: padding {:?} must be at most half the kernel {:?}", self.padding, self.kernel)
        }
        if h + 2 * ph < kh || w + 2 * pw < kw {
            candle_core::bail!(
                "pool2d: input {h}x{w} (padding {:?}) is smaller than the kernel {:?}",
                self.padding,
                self.kernel
            )
        }
        Ok(((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1))
    }
}

/// Max pooling over the last two dimensions.
///
/// # Shapes
/// - `xs`: `(b, c, h, w)`
/// - output: `(b, c, oh, ow)` with `oh = (h + 2*ph - kh) / sh + 1`
///
/// f32 and f64 CPU tensors use ember's kernel (forward and backward); other dtypes and
/// devices fall back to candle's op when the geometry allows it.
pub fn max_pool2d(xs: &Tensor, params: Pool2dParams) -> Result<Tensor> {
    let (_, _, h, w) = xs.dims4()?;
    params.output_size(h, w)?;
    let native = xs.device().is_cpu() && matches!(xs.dtype(), DType::F32 | DType::F64);
    if native {
        return xs.contiguous()?.apply_op1(MaxPool2d(params));
    }
    if params.padding != (0, 0) {
        candle_core::bail!("max_pool2d: padding is only supported for f32/f64 CPU tensors")
    }
    xs.max_pool2d_with_stride(params.kernel, params.stride)
}

/// Element types the kernel handles.
trait PoolElement: Copy + PartialOrd + Send + Sync + std::ops::AddAssign + 'static {
    const NEG_INFINITY: Self;
    const ZERO: Self;
    fn is_nan(self) -> bool;
}

impl PoolElement for f32 {
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    const ZERO: Self = 0.0;
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

impl PoolElement for f64 {
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    const ZERO: Self = 0.0;
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

/// Plane geometry shared by forward and backward.
#[derive(Clone, Copy)]
struct Plane {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    p: Pool2dParams,
}

impl Plane {
    /// Flat index (within the input plane) of the first maximum of output cell `(oy, ox)`,
    /// or `None` when the window lies entirely in the padding.
    #[inline]
    fn argmax<T: PoolElement>(&self, input: &[T], oy: usize, ox: usize) -> Option<usize> {
        let (kh, kw) = self.p.kernel;
        let y0 = (oy * self.p.stride.0) as isize - self.p.padding.0 as isize;
        let x0 = (ox * self.p.stride.1) as isize - self.p.padding.1 as isize;
        let mut best: Option<(usize, T)> = None;
        for ky in 0..kh as isize {
            let y = y0 + ky;
            if y < 0 || y >= self.h as isize {
                continue;
            }
            let row = y as usize * self.w;
            for kx in 0..kw as isize {
                let x = x0 + kx;
                if x < 0 || x >= self.w as isize {
                    continue;
                }
                let idx = row + x as usize;
                let v = input[idx];
                match best {
                    Some((_, m)) if !(v > m || v.is_nan()) => {}
                    _ => best = Some((idx, v)),
                }
                if v.is_nan() {
                    return Some(idx);
                }
            }
        }
        best.map(|(i, _)| i)
    }
}

fn plane_of(layout: &Layout, p: Pool2dParams) -> Result<(usize, Plane)> {
    let (b, c, h, w) = layout.shape().dims4()?;
    let (oh, ow) = p.output_size(h, w)?;
    Ok((b * c, Plane { h, w, oh, ow, p }))
}

fn contiguous<'a, T>(data: &'a [T], layout: &Layout, what: &str) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("max_pool2d: {what} must be contiguous"),
    }
}

fn forward<T: PoolElement>(input: &[T], planes: usize, g: Plane) -> Vec<T> {
    let mut out = vec![T::ZERO; planes * g.oh * g.ow];
    out.par_chunks_mut(g.oh * g.ow).enumerate().for_each(|(plane, out)| {
        let input = &input[plane * g.h * g.w..(plane + 1) * g.h * g.w];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                out[oy * g.ow + ox] = g.argmax(input, oy, ox).map_or(T::NEG_INFINITY, |i| input[i]);
            }
        }
    });
    out
}

fn backward<T: PoolElement>(input: &[T], grad_out: &[T], planes: usize, g: Plane) -> Vec<T> {
    let mut grad_in = vec![T::ZERO; planes * g.h * g.w];
    grad_in.par_chunks_mut(g.h * g.w).enumerate().for_each(|(plane, grad_in)| {
        let input = &input[plane * g.h * g.w..(plane + 1) * g.h * g.w];
        let grad_out = &grad_out[plane * g.oh * g.ow..(plane + 1) * g.oh * g.ow];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                if let Some(i) = g.argmax(input, oy, ox) {
                    grad_in[i] += grad_out[oy * g.ow + ox];
                }
            }
        }
    });
    grad_in
}

/// Forward op; its backward is [`MaxPool2dBackward`].
struct MaxPool2d(Pool2dParams);

impl CustomOp1 for MaxPool2d {
    fn name(&self) -> &'static str {
        "ember-max-pool2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (planes, g) = plane_of(layout, self.0)?;
        let (b, c, _, _) = layout.shape().dims4()?;
        let shape = Shape::from((b, c, g.oh, g.ow));
        let out = match storage {
            CpuStorage::F32(d) => CpuStorage::F32(forward(contiguous(d, layout, "input")?, planes, g)),
            CpuStorage::F64(d) => CpuStorage::F64(forward(contiguous(d, layout, "input")?, planes, g)),
            other => candle_core::bail!("max_pool2d: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, shape))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let grad = arg.apply_op2_no_bwd(&grad_res.contiguous()?, &MaxPool2dBackward(self.0))?;
        Ok(Some(grad))
    }
}

/// Gradient of [`MaxPool2d`] with respect to its input: `(input, grad_output) -> grad_input`.
struct MaxPool2dBackward(Pool2dParams);

impl CustomOp2 for MaxPool2dBackward {
    fn name(&self) -> &'static str {
        "ember-max-pool2d-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (planes, g) = plane_of(l1, self.0)?;
        let (b, c, _, _) = l1.shape().dims4()?;
        if l2.shape().dims() != [b, c, g.oh, g.ow] {
            candle_core::bail!(
                "max_pool2d backward: gradient shape {:?}, expected {:?}",
                l2.shape(),
                (b, c, g.oh, g.ow)
            )
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(gy)) => {
                CpuStorage::F32(backward(contiguous(x, l1, "input")?, contiguous(gy, l2, "gradient")?, planes, g))
            }
            (CpuStorage::F64(x), CpuStorage::F64(gy)) => {
                CpuStorage::F64(backward(contiguous(x, l1, "input")?, contiguous(gy, l2, "gradient")?, planes, g))
            }
            (a, b) => candle_core::bail!("max_pool2d backward: dtypes {:?} and {:?}", a.dtype(), b.dtype()),
        };
        Ok((out, l1.shape().clone()))
    }
}
