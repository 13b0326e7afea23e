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

use crate::element::{as_f32, as_f32_mut, has_avx512f, with_avx512, Float};
pub(crate) use crate::pool_geometry::Plane;
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
        // Recording the argmax costs the forward pass little and saves the backward pass
        // searching every window again (ResNet-18 stem pool, batch 16, forward + backward: 49 → 29-32 ms).
        let record = crate::no_grad::grad_enabled() && xs.track_op();
        let op = MaxPool2d { params, record, indices: std::sync::Mutex::new(Vec::new()) };
        return xs.contiguous()?.apply_op1(op);
    }
    crate::window_pool::window_pool2d(xs, params, crate::window_pool::WindowReduce::Max)
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
    indices: &[u32],
    planes: usize,
    g: Plane,
) -> Result<Vec<T>> {
    let (x, y, gy) = (contiguous(x, xl, "input")?, contiguous(y, yl, "output")?, contiguous(gy, gl, "gradient")?);
    if indices.len() == y.len() && !indices.is_empty() {
        return Ok(backward_recorded(y, gy, indices, planes, g));
    }
    Ok(backward(x, y, gy, planes, g))
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
    // Maximum (and, with `indices`, first argmax) of each window. Cells whose window lies
    // wholly inside the row (all but a column or two at each edge) run tap by tap over whole
    // output rows, 16 at a time on AVX-512 (`update_argmax`): the input row split into its `sw`
    // column phases makes each tap's reads contiguous. Edge cells scan their clipped windows
    // one by one.
    let ((kh, kw), (sh, sw), (ph, pw)) = (g.p.kernel, g.p.stride, g.p.padding);
    let clip = |start: isize, k: usize, n: usize| {
        (start.max(0) as usize, ((start + k as isize).min(n as isize)).max(0) as usize)
    };
    let inner_lo = pw.div_ceil(sw).min(g.ow);
    let inner_hi = if g.w + pw >= kw { ((g.w + pw - kw) / sw + 1).min(g.ow) } else { 0 }.max(inner_lo);
    let phase_len = g.w.div_ceil(sw);
    let mut phases = vec![T::ZERO; sw * phase_len];
    for oy in 0..g.oh {
        let (y_lo, y_hi) = clip((oy * sh) as isize - ph as isize, kh, g.h);
        let out_row = &mut out[oy * g.ow..(oy + 1) * g.ow];
        let mut ix_row = indices.as_deref_mut().map(|ix| &mut ix[oy * g.ow..(oy + 1) * g.ow]);
        for ox in (0..inner_lo).chain(inner_hi..g.ow) {
            let (x_lo, x_hi) = clip((ox * sw) as isize - pw as isize, kw, g.w);
            if y_lo >= y_hi || x_lo >= x_hi {
                out_row[ox] = T::NEG_INFINITY;
                if let Some(ix) = ix_row.as_deref_mut() {
                    ix[ox] = u32::MAX;
                }
                continue;
            }
            let (mut m, mut at) = (input[y_lo * g.w + x_lo], y_lo * g.w + x_lo);
            for y in y_lo..y_hi {
                for (x, &v) in input[y * g.w + x_lo..y * g.w + x_hi].iter().enumerate() {
                    // Strictly larger keeps the first maximum; the first NaN wins and stays.
                    if v > m || (v.is_nan() && !m.is_nan()) {
                        (m, at) = (v, y * g.w + x_lo + x);
                    }
                }
            }
            out_row[ox] = m;
            if let Some(ix) = ix_row.as_deref_mut() {
                ix[ox] = at as u32;
            }
        }
        let m_row = &mut out_row[inner_lo..inner_hi];
        let mut i_row = ix_row.map(|ix| &mut ix[inner_lo..inner_hi]);
        if y_lo >= y_hi {
            m_row.fill(T::NEG_INFINITY);
            if let Some(i) = i_row {
                i.fill(u32::MAX);
            }
            continue;
        }
        // Start from each window's first element (a window of -inf still has a first maximum).
        let first = y_lo * g.w + inner_lo * sw - pw;
        for (j, m) in m_row.iter_mut().enumerate() {
            *m = input[first + j * sw];
        }
        if let Some(i) = i_row.as_deref_mut() {
            for (j, i) in i.iter_mut().enumerate() {
                *i = (first + j * sw) as u32;
            }
        }
        for y in y_lo..y_hi {
            let row = &input[y * g.w..(y + 1) * g.w];
            let row: &[T] = if sw == 1 {
                row
            } else {
                for p in 0..sw {
                    let phase = &mut phases[p * phase_len..(p + 1) * phase_len];
                    phase.iter_mut().zip(row.iter().skip(p).step_by(sw)).for_each(|(d, v)| *d = *v);
                }
                &phases
            };
            for kx in 0..kw {
                // Column `sw*ox + kx - pw` is column `ox + shift` of phase `phase`.
                let d = kx as isize - pw as isize;
                let (phase, shift) = (d.rem_euclid(sw as isize) as usize, d.div_euclid(sw as isize));
                let from = phase * phase_len + (inner_lo as isize + shift) as usize;
                let taps = &row[from..from + m_row.len()];
                let base = ((y * g.w + inner_lo * sw) as isize + d) as u32;
                update_argmax(m_row, i_row.as_deref_mut(), taps, (base, sw as u32));
            }
        }
    }
}

/// One tap of a row of windows: where `taps[j]` beats the running maximum `m[j]` (strictly
/// larger, or the first NaN), it becomes the maximum and (given `i`) `base + j * step` the argmax.
#[inline(always)]
fn update_argmax<T: Float>(m: &mut [T], mut i: Option<&mut [u32]>, taps: &[T], (base, step): (u32, u32)) {
    assert!(i.as_ref().is_none_or(|i| i.len() == m.len()) && taps.len() == m.len(), "max pool: argmax row sizes");
    #[cfg(target_arch = "x86_64")]
    if has_avx512f() {
        if let (Some(mf), Some(tf)) = (as_f32_mut(m), as_f32(taps)) {
            // SAFETY: AVX-512F is present; the sizes were asserted above.
            unsafe { avx512::update_argmax(mf, i, tf, (base, step)) };
            return;
        }
    }
    for (j, (m, &v)) in m.iter_mut().zip(taps).enumerate() {
        if (v > *m) | (v.is_nan() & !m.is_nan()) {
            *m = v;
            if let Some(i) = i.as_deref_mut() {
                i[j] = base + j as u32 * step;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// [`super::update_argmax`] on f32, 16 windows at a time (the tail under a mask).
    ///
    /// # Safety
    /// AVX-512F must be available; `m`, `i` (if given) and `taps` must have the same length.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn update_argmax(
        m: &mut [f32],
        mut i: Option<&mut [u32]>,
        taps: &[f32],
        (base, step): (u32, u32),
    ) {
        debug_assert!(i.as_ref().is_none_or(|i| i.len() == m.len()) && taps.len() == m.len());
        // SAFETY: every access is to lanes `j..j + 16` of the three slices under a mask that
        // keeps it below their common length.
        unsafe {
            let lanes = _mm512_mullo_epi32(
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                _mm512_set1_epi32(step as i32),
            );
            let mut j = 0;
            while j < m.len() {
                let k: __mmask16 = if m.len() - j >= 16 { 0xffff } else { (1u16 << (m.len() - j)) - 1 };
                let v = _mm512_maskz_loadu_ps(k, taps.as_ptr().add(j));
                let mv = _mm512_maskz_loadu_ps(k, m.as_ptr().add(j));
                let larger = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, mv);
                let first_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v) & !_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(mv, mv);
                let better = (larger | first_nan) & k;
                let at = _mm512_add_epi32(_mm512_set1_epi32((base + j as u32 * step) as i32), lanes);
                _mm512_mask_storeu_ps(m.as_mut_ptr().add(j), better, v);
                if let Some(i) = i.as_deref_mut() {
                    _mm512_mask_storeu_epi32(i.as_mut_ptr().add(j).cast(), better, at);
                }
                j += 16;
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
    let mut out = crate::element::zeroed(planes * g.oh * g.ow);
    out.par_chunks_mut(g.oh * g.ow).enumerate().for_each(|(plane, out)| {
        let input = &input[plane * g.h * g.w..(plane + 1) * g.h * g.w];
        with_avx512(|| pool_plane(input, out, None, &g));
    });
    out
}

fn backward<T: Float>(input: &[T], output: &[T], grad_out: &[T], planes: usize, g: Plane) -> Vec<T> {
    let mut grad_in = crate::element::zeroed(planes * g.h * g.w);
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
/// maximum: recorded by the forward pass when the output takes part in a gradient (`record`),
/// else found again by comparing the input with the output. An op value serves one forward call.
struct MaxPool2d {
    params: Pool2dParams,
    record: bool,
    /// Per output cell, its window's first maximum (flat index within the input plane).
    indices: std::sync::Mutex<Vec<u32>>,
}

/// The forward pass recording each window's first maximum: `(output, indices)`.
fn forward_recording<T: Float>(input: &[T], planes: usize, g: Plane) -> (Vec<T>, Vec<u32>) {
    let ohw = g.oh * g.ow;
    let mut out = crate::element::zeroed(planes * ohw);
    let mut indices = vec![0u32; planes * ohw];
    out.par_chunks_mut(ohw).zip(indices.par_chunks_mut(ohw)).enumerate().for_each(|(plane, (out, ix))| {
        with_avx512(|| pool_plane(&input[plane * g.h * g.w..(plane + 1) * g.h * g.w], out, Some(ix), &g));
    });
    (out, indices)
}

/// The backward pass from recorded argmaxes: each output gradient added to its window's first
/// maximum.
fn backward_recorded<T: Float>(output: &[T], grad_out: &[T], indices: &[u32], planes: usize, g: Plane) -> Vec<T> {
    let mut grad_in = crate::element::zeroed(planes * g.h * g.w);
    let ohw = g.oh * g.ow;
    grad_in.par_chunks_mut(g.h * g.w).enumerate().for_each(|(plane, grad_in)| {
        let cells = plane * ohw..(plane + 1) * ohw;
        let (ix, y, dy) = (&indices[cells.clone()], &output[cells.clone()], &grad_out[cells]);
        crate::unpool::scatter(grad_in, ix, y, dy, |_| true);
    });
    grad_in
}

impl CustomOp1 for MaxPool2d {
    fn name(&self) -> &'static str {
        "ember-max-pool2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (planes, g) = plane_of(layout, self.params)?;
        let (b, c, _, _) = layout.shape().dims4()?;
        let shape = Shape::from((b, c, g.oh, g.ow));
        fn run<T: Float>(op: &MaxPool2d, x: &[T], planes: usize, g: Plane) -> Vec<T> {
            if !op.record {
                return forward(x, planes, g);
            }
            let (out, indices) = forward_recording(x, planes, g);
            *op.indices.lock().unwrap_or_else(|e| e.into_inner()) = indices;
            out
        }
        let out = match storage {
            CpuStorage::F32(d) => CpuStorage::F32(run(self, contiguous(d, layout, "input")?, planes, g)),
            CpuStorage::F64(d) => CpuStorage::F64(run(self, contiguous(d, layout, "input")?, planes, g)),
            other => candle_core::bail!("max_pool2d: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, shape))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let grad_res = grad_res.contiguous()?;
        let (planes, g) = plane_of(arg.layout(), self.params)?;
        let indices = self.indices.lock().unwrap_or_else(|e| e.into_inner());
        let (xs, xl) = arg.storage_and_layout();
        let (ys, yl) = res.storage_and_layout();
        let (gs, gl) = grad_res.storage_and_layout();
        if gl.shape() != yl.shape() {
            candle_core::bail!("max_pool2d backward: gradient shape {:?}, expected {:?}", gl.shape(), yl.shape())
        }
        let grad = match (&*xs, &*ys, &*gs) {
            (Storage::Cpu(CpuStorage::F32(x)), Storage::Cpu(CpuStorage::F32(y)), Storage::Cpu(CpuStorage::F32(gy))) => {
                CpuStorage::F32(backward_of((x, xl), (y, yl), (gy, gl), &indices, planes, g)?)
            }
            (Storage::Cpu(CpuStorage::F64(x)), Storage::Cpu(CpuStorage::F64(y)), Storage::Cpu(CpuStorage::F64(gy))) => {
                CpuStorage::F64(backward_of((x, xl), (y, yl), (gy, gl), &indices, planes, g)?)
            }
            _ => candle_core::bail!("max_pool2d backward: expected f32/f64 CPU tensors of one dtype"),
        };
        Ok(Some(Tensor::from_storage(Storage::Cpu(grad), arg.shape().clone(), BackpropOp::none(), false)))
    }
}
