//! 2-D average pooling with a backward pass for any window geometry, and adaptive average
//! pooling.
//!
//! candle's `avg_pool2d` has no padding and its backward only handles `kernel == stride`. This
//! kernel pads with implicit zeros that count towards the divisor (PyTorch's default
//! `count_include_pad=True`), and its backward spreads each output gradient evenly over the
//! window, accumulating where windows overlap.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::pool_geometry::Pool2dParams;

/// Average pooling over the last two dimensions; padded cells count as zeros in the divisor.
///
/// # Shapes
/// - `xs`: `(b, c, h, w)`
/// - output: `(b, c, oh, ow)` with `oh = (h + 2*ph - kh) / sh + 1`
///
/// f32 and f64 CPU tensors use ember's kernel; other dtypes and devices gather the windows
/// with candle's indexing ops (the same values and gradients, padding included).
pub fn avg_pool2d(xs: &Tensor, params: Pool2dParams) -> Result<Tensor> {
    let (_, _, h, w) = xs.dims4()?;
    params.output_size(h, w)?;
    if crate::portable::native(xs) {
        return xs.contiguous()?.apply_op1(AvgPool2d(params));
    }
    crate::window_pool::window_pool2d(xs, params, crate::window_pool::WindowReduce::Mean)
}

/// Adaptive average pooling to an `(oh, ow)` output, PyTorch's window rule: output cell `i`
/// averages input rows `floor(i*h/oh) .. ceil((i+1)*h/oh)`.
///
/// Computed as two small matrix products (`P_h · x · P_wᵀ`), so the backward pass is exact
/// and comes from candle's matmul.
///
/// # Shapes
/// - `xs`: `(b, c, h, w)`
/// - output: `(b, c, oh, ow)`
pub fn adaptive_avg_pool2d(xs: &Tensor, (oh, ow): (usize, usize)) -> Result<Tensor> {
    let (_, _, h, w) = xs.dims4()?;
    if oh == 0 || ow == 0 || h == 0 || w == 0 {
        candle_core::bail!("adaptive_avg_pool2d: cannot pool {h}x{w} to {oh}x{ow}")
    }
    let (b, c) = (xs.dim(0)?, xs.dim(1)?);
    let ph = pooling_matrix(h, oh, xs)?; // (oh, h)
    let pw = pooling_matrix(w, ow, xs)?.t()?; // (w, ow)
    let cols = xs.contiguous()?.reshape((b * c, h, w))?.broadcast_matmul(&pw)?; // (b*c, h, ow)
    ph.broadcast_matmul(&cols)?.reshape((b, c, oh, ow))
}

/// Global average pooling: the mean over height and width.
///
/// # Shapes
/// - `xs`: `(b, c, h, w)`
/// - output: `(b, c)`
pub fn global_avg_pool2d(xs: &Tensor) -> Result<Tensor> {
    xs.dims4()?;
    xs.mean(3)?.mean(2)
}

/// `(out, n)` matrix whose row `i` averages PyTorch's adaptive window `i`.
fn pooling_matrix(n: usize, out: usize, like: &Tensor) -> Result<Tensor> {
    let mut m = vec![0f64; out * n];
    for i in 0..out {
        let start = i * n / out;
        let end = ((i + 1) * n).div_ceil(out);
        for j in start..end {
            m[i * n + j] = 1.0 / (end - start) as f64;
        }
    }
    Tensor::from_vec(m, (out, n), like.device())?.to_dtype(like.dtype())
}

/// Element types the kernel handles.
trait Element: Copy + Send + Sync + std::ops::AddAssign + std::ops::Mul<Output = Self> + 'static {
    const ZERO: Self;
    fn from_f64(v: f64) -> Self;
}

impl Element for f32 {
    const ZERO: Self = 0.0;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Element for f64 {
    const ZERO: Self = 0.0;
    fn from_f64(v: f64) -> Self {
        v
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
    /// In-bounds input rows and columns of output cell `(oy, ox)`.
    fn window(&self, oy: usize, ox: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let clip = |o: usize, s: usize, p: usize, k: usize, n: usize| {
            let start = (o * s) as isize - p as isize;
            let end = (start + k as isize).min(n as isize);
            (start.max(0) as usize)..(end.max(0) as usize)
        };
        (
            clip(oy, self.p.stride.0, self.p.padding.0, self.p.kernel.0, self.h),
            clip(ox, self.p.stride.1, self.p.padding.1, self.p.kernel.1, self.w),
        )
    }

    fn scale<T: Element>(&self) -> T {
        T::from_f64(1.0 / (self.p.kernel.0 * self.p.kernel.1) as f64)
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
        None => candle_core::bail!("avg_pool2d: {what} must be contiguous"),
    }
}

fn forward<T: Element>(input: &[T], planes: usize, g: Plane) -> Vec<T> {
    let mut out = vec![T::ZERO; planes * g.oh * g.ow];
    let scale = g.scale::<T>();
    out.par_chunks_mut(g.oh * g.ow).enumerate().for_each(|(plane, out)| {
        let input = &input[plane * g.h * g.w..(plane + 1) * g.h * g.w];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (rows, cols) = g.window(oy, ox);
                let mut sum = T::ZERO;
                for y in rows {
                    for x in cols.clone() {
                        sum += input[y * g.w + x];
                    }
                }
                out[oy * g.ow + ox] = sum * scale;
            }
        }
    });
    out
}

fn backward<T: Element>(grad_out: &[T], planes: usize, g: Plane) -> Vec<T> {
    let mut grad_in = vec![T::ZERO; planes * g.h * g.w];
    let scale = g.scale::<T>();
    grad_in.par_chunks_mut(g.h * g.w).enumerate().for_each(|(plane, grad_in)| {
        let grad_out = &grad_out[plane * g.oh * g.ow..(plane + 1) * g.oh * g.ow];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let share = grad_out[oy * g.ow + ox] * scale;
                let (rows, cols) = g.window(oy, ox);
                for y in rows {
                    for x in cols.clone() {
                        grad_in[y * g.w + x] += share;
                    }
                }
            }
        }
    });
    grad_in
}

/// Forward op; its backward is [`AvgPool2dBackward`].
struct AvgPool2d(Pool2dParams);

impl CustomOp1 for AvgPool2d {
    fn name(&self) -> &'static str {
        "ember-avg-pool2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (planes, g) = plane_of(layout, self.0)?;
        let (b, c, _, _) = layout.shape().dims4()?;
        let out = match storage {
            CpuStorage::F32(d) => CpuStorage::F32(forward(contiguous(d, layout, "input")?, planes, g)),
            CpuStorage::F64(d) => CpuStorage::F64(forward(contiguous(d, layout, "input")?, planes, g)),
            other => candle_core::bail!("avg_pool2d: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, Shape::from((b, c, g.oh, g.ow))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let grad = arg.apply_op2_no_bwd(&grad_res.contiguous()?, &AvgPool2dBackward(self.0))?;
        Ok(Some(grad))
    }
}

/// Gradient of [`AvgPool2d`]: `(input, grad_output) -> grad_input` (the input only supplies
/// the shape).
struct AvgPool2dBackward(Pool2dParams);

impl CustomOp2 for AvgPool2dBackward {
    fn name(&self) -> &'static str {
        "ember-avg-pool2d-backward"
    }

    fn cpu_fwd(&self, _s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (planes, g) = plane_of(l1, self.0)?;
        let (b, c, _, _) = l1.shape().dims4()?;
        if l2.shape().dims() != [b, c, g.oh, g.ow] {
            candle_core::bail!(
                "avg_pool2d backward: gradient shape {:?}, expected {:?}",
                l2.shape(),
                (b, c, g.oh, g.ow)
            )
        }
        let out = match s2 {
            CpuStorage::F32(gy) => CpuStorage::F32(backward(contiguous(gy, l2, "gradient")?, planes, g)),
            CpuStorage::F64(gy) => CpuStorage::F64(backward(contiguous(gy, l2, "gradient")?, planes, g)),
            other => candle_core::bail!("avg_pool2d backward: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, l1.shape().clone()))
    }
}
