//! 2-D max pooling with a correct backward pass.
//!
//! candle's own max-pool backward spreads the gradient over every element equal to the window
//! maximum after nearest-neighbour upsampling, which gives wrong gradients for lone maxima and
//! has no support for overlapping windows. This kernel routes each output gradient to exactly
//! one input element, the first maximum of its window in row-major order (PyTorch's rule),
//! and accumulates where windows overlap.

use candle_core::backend::BackendStorage;
use candle_core::op::BackpropOp;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use crate::element::{with_avx512, Float};
pub use crate::pool_geometry::Pool2dParams;

/// Max pooling over the last two dimensions.
///
/// # Shapes
/// - `xs`: `(b, c, h, w)`
/// - output: `(b, c, oh, ow)` with `oh = (h + 2*ph - kh) / sh + 1`
///
/// f32 and f64 CPU tensors use ember's kernel (forward and backward); other dtypes and
/// devices gather the windows with candle's indexing ops (the same values and gradients).
pub fn max_pool2d(xs: &Tensor, params: Pool2dParams) -> Result<Tensor> {
    let (_, _, h, w) = xs.dims4()?;
    params.output_size(h, w)?;
    let native = crate::portable::native(xs);
    if native {
        return xs.contiguous()?.apply_op1(MaxPool2d(params));
    }
    crate::window_pool::window_pool2d(xs, params, crate::window_pool::WindowReduce::Max)
}

/// Plane geometry shared by forward and backward.
#[derive(Clone, Copy)]
pub(crate) struct Plane {
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub p: Pool2dParams,
}

impl Plane {
    /// Calls `f(row_start, x_lo, x_hi)` for each input row of output cell `(oy, ox)`'s window,
    /// clipped to the input (padding never takes part).
    #[inline]
    fn window(&self, oy: usize, ox: usize, mut f: impl FnMut(usize, usize, usize)) {
        let (kh, kw) = self.p.kernel;
        let y0 = (oy * self.p.stride.0) as isize - self.p.padding.0 as isize;
        let x0 = (ox * self.p.stride.1) as isize - self.p.padding.1 as isize;
        let (y_lo, y_hi) = (y0.max(0) as usize, ((y0 + kh as isize).min(self.h as isize)).max(0) as usize);
        let (x_lo, x_hi) = (x0.max(0) as usize, ((x0 + kw as isize).min(self.w as isize)).max(0) as usize);
        if x_lo >= x_hi {
            return;
        }
        for y in y_lo..y_hi {
            f(y * self.w, x_lo, x_hi);
        }
    }

    /// The window maximum; NaN when the window holds a NaN, `-inf` when it lies in the padding.
    #[inline]
    fn max<T: Float>(&self, input: &[T], oy: usize, ox: usize) -> T {
        let mut m = T::NEG_INFINITY;
        let mut nan = false;
        self.window(oy, ox, |row, lo, hi| {
            for &v in &input[row + lo..row + hi] {
                if v > m {
                    m = v;
                }
                nan |= v.is_nan();
            }
        });
        if nan {
            T::NAN
        } else {
            m
        }
    }

    /// Flat index of the first element of the window equal to its maximum `m` (the first NaN
    /// when `m` is NaN): PyTorch's routing of the gradient to the first maximum.
    #[inline]
    fn first_max<T: Float>(&self, input: &[T], oy: usize, ox: usize, m: T) -> Option<usize> {
        let mut found = None;
        self.window(oy, ox, |row, lo, hi| {
            if found.is_none() {
                found = input[row + lo..row + hi]
                    .iter()
                    .position(|&v| v == m || (m.is_nan() && v.is_nan()))
                    .map(|i| row + lo + i);
            }
        });
        found
    }
}

fn plane_of(layout: &Layout, p: Pool2dParams) -> Result<(usize, Plane)> {
    let (b, c, h, w) = layout.shape().dims4()?;
    let (oh, ow) = p.output_size(h, w)?;
    Ok((b * c, Plane { h, w, oh, ow, p }))
}

/// [`backward`] on the input, output and output gradient as laid out (each refused, by name,
/// unless contiguous).
#[inline]
fn backward_of<T: Float>(
    (x, xl): (&[T], &Layout),
    (y, yl): (&[T], &Layout),
    (gy, gl): (&[T], &Layout),
    planes: usize,
    g: Plane,
) -> Result<Vec<T>> {
    Ok(backward(contiguous(x, xl, "input")?, contiguous(y, yl, "output")?, contiguous(gy, gl, "gradient")?, planes, g))
}

fn contiguous<'a, T>(data: &'a [T], layout: &Layout, what: &str) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("max_pool2d: {what} must be contiguous"),
    }
}

impl Plane {
    /// A 2x2 window with stride 2 and no padding: the classic pool, unrolled.
    fn is_2x2(&self) -> bool {
        self.p.kernel == (2, 2) && self.p.stride == (2, 2) && self.p.padding == (0, 0)
    }
}

/// Pools one plane into `out`; with `indices`, also records each window's first maximum (flat
/// index within the plane), which fused kernels keep for their backward pass.
pub(crate) fn pool_plane<T: Float>(input: &[T], out: &mut [T], mut indices: Option<&mut [u32]>, g: &Plane) {
    if g.is_2x2() && pool_plane_2x2(input, out, indices.as_deref_mut(), g) {
        return;
    }
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let cell = oy * g.ow + ox;
            let m = g.max(input, oy, ox);
            out[cell] = m;
            if let Some(ix) = indices.as_deref_mut() {
                ix[cell] = g.first_max(input, oy, ox, m).map_or(u32::MAX, |i| i as u32);
            }
        }
    }
}

/// The 2x2 / stride 2 pool, branch-free so it vectorises: the first maximum of `[a b; c d]` in
/// row-major order is the first of the top pair unless the bottom pair's is strictly larger.
/// Returns `false` (leaving the caller to redo the plane) when the plane holds a NaN.
fn pool_plane_2x2<T: Float>(input: &[T], out: &mut [T], mut indices: Option<&mut [u32]>, g: &Plane) -> bool {
    let (w, ow) = (g.w, g.ow);
    let mut nan = false;
    for oy in 0..g.oh {
        let r0 = &input[2 * oy * w..2 * oy * w + 2 * ow];
        let r1 = &input[(2 * oy + 1) * w..(2 * oy + 1) * w + 2 * ow];
        let out_row = &mut out[oy * ow..(oy + 1) * ow];
        match indices.as_deref_mut() {
            None => {
                for ((o, p0), p1) in out_row.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                    let top = if p0[1] > p0[0] { p0[1] } else { p0[0] };
                    let bottom = if p1[1] > p1[0] { p1[1] } else { p1[0] };
                    *o = if bottom > top { bottom } else { top };
                    nan |= p0[0].is_nan() | p0[1].is_nan() | p1[0].is_nan() | p1[1].is_nan();
                }
            }
            Some(ix) => {
                let ix_row = &mut ix[oy * ow..(oy + 1) * ow];
                let base = (2 * oy * w) as u32;
                for (ox, ((o, p0), p1)) in
                    out_row.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)).enumerate()
                {
                    let (top, ti) = if p0[1] > p0[0] { (p0[1], 1) } else { (p0[0], 0) };
                    let (bottom, bi) = if p1[1] > p1[0] { (p1[1], 1) } else { (p1[0], 0) };
                    let (m, i) = if bottom > top { (bottom, w as u32 + bi) } else { (top, ti) };
                    *o = m;
                    ix_row[ox] = base + 2 * ox as u32 + i;
                    nan |= p0[0].is_nan() | p0[1].is_nan() | p1[0].is_nan() | p1[1].is_nan();
                }
            }
        }
    }
    !nan
}

/// Adds each output gradient of one plane to its window's first maximum in `grad_in`.
fn route_plane<T: Float>(input: &[T], output: &[T], grad_out: &[T], grad_in: &mut [T], g: &Plane) {
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let cell = oy * g.ow + ox;
            let m = output[cell];
            if g.is_2x2() && !m.is_nan() {
                let (r0, x0) = (2 * oy * g.w, 2 * ox);
                let idx = [r0 + x0, r0 + x0 + 1, r0 + g.w + x0, r0 + g.w + x0 + 1];
                if let Some(&i) = idx.iter().find(|&&i| input[i] == m) {
                    grad_in[i] += grad_out[cell];
                    continue;
                }
            }
            if let Some(i) = g.first_max(input, oy, ox, m) {
                grad_in[i] += grad_out[cell];
            }
        }
    }
}

fn forward<T: Float>(input: &[T], planes: usize, g: Plane) -> Vec<T> {
    let mut out = vec![T::ZERO; planes * g.oh * g.ow];
    out.par_chunks_mut(g.oh * g.ow).enumerate().for_each_init(Vec::new, |rows, (plane, out)| {
        let input = &input[plane * g.h * g.w..(plane + 1) * g.h * g.w];
        if g.is_2x2() {
            pool_plane(input, out, None, &g);
        } else {
            with_avx512(|| pool_plane_separable(input, out, &g, rows));
        }
    });
    out
}

/// `a` or `b`, whichever is larger, NaN if either is (as the window maximum is).
#[inline(always)]
fn nan_max<T: Float>(a: T, b: T) -> T {
    if b > a || b.is_nan() {
        b
    } else {
        a
    }
}

/// The maxima of one plane (no argmax), separably: for each output row the window's rows are
/// reduced element-wise into `rows` (a loop that vectorises), then each window's columns of that
/// reduced row. The same values as [`Plane::max`] per cell (max is exact, NaN propagates), at
/// `kh + kw` comparisons per output instead of `kh · kw` scalar ones (ResNet's 3x3 stride-2 pool).
#[inline(always)]
fn pool_plane_separable<T: Float>(input: &[T], out: &mut [T], g: &Plane, rows: &mut Vec<T>) {
    let ((kh, kw), (sh, sw), (ph, pw)) = (g.p.kernel, g.p.stride, g.p.padding);
    rows.resize(g.w, T::ZERO);
    for (oy, out_row) in out.chunks_exact_mut(g.ow).enumerate() {
        let y0 = (oy * sh) as isize - ph as isize;
        let (lo, hi) = (y0.max(0) as usize, ((y0 + kh as isize).min(g.h as isize)).max(0) as usize);
        if lo >= hi {
            out_row.fill(T::NEG_INFINITY);
            continue;
        }
        rows.copy_from_slice(&input[lo * g.w..(lo + 1) * g.w]);
        for y in lo + 1..hi {
            for (m, v) in rows.iter_mut().zip(&input[y * g.w..(y + 1) * g.w]) {
                *m = nan_max(*m, *v);
            }
        }
        for (ox, o) in out_row.iter_mut().enumerate() {
            let x0 = (ox * sw) as isize - pw as isize;
            let (lo, hi) = (x0.max(0) as usize, ((x0 + kw as isize).min(g.w as isize)).max(0) as usize);
            *o = rows[lo.min(hi)..hi].iter().fold(T::NEG_INFINITY, |m, v| nan_max(m, *v));
        }
    }
}

fn backward<T: Float>(input: &[T], output: &[T], grad_out: &[T], planes: usize, g: Plane) -> Vec<T> {
    let mut grad_in = vec![T::ZERO; planes * g.h * g.w];
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    grad_in.par_chunks_mut(hw).enumerate().for_each(|(plane, grad_in)| {
        route_plane(
            &input[plane * hw..(plane + 1) * hw],
            &output[plane * ohw..(plane + 1) * ohw],
            &grad_out[plane * ohw..(plane + 1) * ohw],
            grad_in,
            &g,
        );
    });
    grad_in
}

/// The op: forward computes window maxima, backward routes each gradient to its window's first
/// maximum (found again by comparing the input with the output).
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

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let grad_res = grad_res.contiguous()?;
        let (planes, g) = plane_of(arg.layout(), self.0)?;
        let (xs, xl) = arg.storage_and_layout();
        let (ys, yl) = res.storage_and_layout();
        let (gs, gl) = grad_res.storage_and_layout();
        if gl.shape() != yl.shape() {
            candle_core::bail!("max_pool2d backward: gradient shape {:?}, expected {:?}", gl.shape(), yl.shape())
        }
        let grad = match (&*xs, &*ys, &*gs) {
            (Storage::Cpu(CpuStorage::F32(x)), Storage::Cpu(CpuStorage::F32(y)), Storage::Cpu(CpuStorage::F32(gy))) => {
                CpuStorage::F32(backward_of((x, xl), (y, yl), (gy, gl), planes, g)?)
            }
            (Storage::Cpu(CpuStorage::F64(x)), Storage::Cpu(CpuStorage::F64(y)), Storage::Cpu(CpuStorage::F64(gy))) => {
                CpuStorage::F64(backward_of((x, xl), (y, yl), (gy, gl), planes, g)?)
            }
            _ => candle_core::bail!("max_pool2d backward: expected f32/f64 CPU tensors of one dtype"),
        };
        Ok(Some(Tensor::from_storage(Storage::Cpu(grad), arg.shape().clone(), BackpropOp::none(), false)))
    }
}
