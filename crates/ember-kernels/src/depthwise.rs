//! Depthwise convolution (`groups = c_in = c_out`) computed directly, one plane at a time.
//!
//! A depthwise filter is `kh x kw` taps per channel, far too small for a GEMM to pay off (and
//! candle runs grouped convolutions one group at a time: a narrow, a convolution and a concat per
//! channel). Here each tap is a scaled row-segment add over the whole plane, which the compiler
//! vectorises; planes run in parallel. Backward computes the input gradient per plane and the
//! weight and bias gradients as per-plane partial sums reduced over the batch.

use rayon::prelude::*;

use crate::activation::FusedActivation;
use crate::conv_geometry::{ConvGeometry, ConvGrads, Needs};
use crate::conv_spec::ConvSpec;
use crate::element::{sum, Float};

/// Whether the direct depthwise kernel handles this geometry.
pub(crate) fn applies(g: &ConvGeometry) -> bool {
    g.p.groups > 1 && g.p.groups == g.c && g.o == g.c
}

/// Calls `f(oy, iy, lo, hi, start)` for each output row whose tap `(ki, kj)` reads an input row
/// `iy`, with the valid output columns `lo..hi` and the input column `start` of `lo`.
#[inline]
fn for_each_row(g: &ConvGeometry, ki: usize, kj: usize, mut f: impl FnMut(usize, usize, usize, usize, usize)) {
    let (s, d, pad) = (g.p.stride, g.p.dilation, g.p.padding as isize);
    let x_off = (kj * d) as isize - pad;
    let (lo, hi) = g.valid_range(x_off, g.w, g.ow);
    if lo >= hi {
        return;
    }
    let start = (lo as isize * s as isize + x_off) as usize;
    for oy in 0..g.oh {
        let iy = (oy * s + ki * d) as isize - pad;
        if iy >= 0 && iy < g.h as isize {
            f(oy, iy as usize, lo, hi, start);
        }
    }
}

/// The valid output columns `lo..hi` of column tap `kj` and the input column `start` that `lo`
/// reads, for every `kj` (the same for every row, so computed once per call).
fn column_taps(g: &ConvGeometry) -> Vec<(usize, usize, usize)> {
    let (s, d, pad) = (g.p.stride as isize, g.p.dilation as isize, g.p.padding as isize);
    (0..g.kw)
        .map(|kj| {
            let x_off = kj as isize * d - pad;
            let (lo, hi) = g.valid_range(x_off, g.w, g.ow);
            let start = if lo < hi { (lo as isize * s + x_off) as usize } else { 0 };
            (lo, hi, start)
        })
        .collect()
}

/// Forward, one output row at a time: every tap of the filter is added into the row while it
/// sits in L1 (a plane-at-a-time order streams the whole output plane through the cache once
/// per tap, 9 or 25 times). With stride `s > 1` each input row is first split into its `s`
/// column phases, so every tap reads a contiguous run and the loop vectorises.
pub(crate) fn forward<T: Float>(x: &[T], conv: ConvSpec<'_, T>) -> Vec<T> {
    let ConvSpec { weight, bias, act, g } = conv;
    let (hw, ohw, kk, s, d, pad) = (g.h * g.w, g.ohw(), g.kh * g.kw, g.p.stride, g.p.dilation, g.p.padding as isize);
    let cols = column_taps(g);
    let phase_len = g.w.div_ceil(s);
    let mut y = vec![T::ZERO; g.b * g.c * ohw];
    y.par_chunks_mut(ohw).enumerate().for_each_init(
        || vec![T::ZERO; if s > 1 { s * phase_len } else { 0 }],
        |phases, (plane, out)| {
            let c = plane % g.c;
            let input = &x[plane * hw..(plane + 1) * hw];
            let taps = &weight[c * kk..(c + 1) * kk];
            out.fill(bias.map_or(T::ZERO, |b| b[c]));
            for (oy, dst) in out.chunks_exact_mut(g.ow).enumerate() {
                for ki in 0..g.kh {
                    let iy = (oy * s + ki * d) as isize - pad;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let row = &input[iy as usize * g.w..(iy as usize + 1) * g.w];
                    if s == 1 {
                        for (kj, &(lo, hi, start)) in cols.iter().enumerate() {
                            let wv = taps[ki * g.kw + kj];
                            for (o, v) in dst[lo..hi].iter_mut().zip(&row[start..]) {
                                *o += wv * *v;
                            }
                        }
                    } else {
                        // Phase p holds the row's columns p, p + s, p + 2s, ...
                        for (i, v) in row.iter().enumerate() {
                            phases[(i % s) * phase_len + i / s] = *v;
                        }
                        for (kj, &(lo, hi, start)) in cols.iter().enumerate() {
                            let wv = taps[ki * g.kw + kj];
                            let src = &phases[(start % s) * phase_len + start / s..];
                            for (o, v) in dst[lo..hi].iter_mut().zip(src) {
                                *o += wv * *v;
                            }
                        }
                    }
                }
            }
            act.apply(out);
        },
    );
    y
}

pub(crate) fn backward<T: Float>(
    x: &[T],
    weight: &[T],
    y: &[T],
    dy: &[T],
    act: FusedActivation,
    g: &ConvGeometry,
    needs: Needs,
) -> ConvGrads<T> {
    let (hw, ohw, kk, s) = (g.h * g.w, g.ohw(), g.kh * g.kw, g.p.stride);
    let planes = g.b * g.c;
    // Per plane: kk weight-gradient partials, then the bias-gradient partial.
    let mut partials = vec![T::ZERO; planes * (kk + 1)];
    let plane_work = |plane: usize, dz: &mut Vec<T>, partial: &mut [T], dx: Option<&mut [T]>| {
        let c = plane % g.c;
        let dy_p = &dy[plane * ohw..(plane + 1) * ohw];
        act.mask_gradient(&y[plane * ohw..(plane + 1) * ohw], dy_p, dz);
        let input = &x[plane * hw..(plane + 1) * hw];
        partial[kk] = sum(dz);
        let mut dx = dx;
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let tap = ki * g.kw + kj;
                let wv = weight[c * kk + tap];
                let mut acc = T::ZERO;
                for_each_row(g, ki, kj, |oy, iy, lo, hi, start| {
                    let grad = &dz[oy * g.ow + lo..oy * g.ow + hi];
                    let row = iy * g.w + start;
                    if s == 1 {
                        for (gv, xv) in grad.iter().zip(&input[row..]) {
                            acc += *gv * *xv;
                        }
                        if let Some(dx) = dx.as_deref_mut() {
                            for (d, gv) in dx[row..].iter_mut().zip(grad) {
                                *d += wv * *gv;
                            }
                        }
                    } else {
                        for (i, gv) in grad.iter().enumerate() {
                            acc += *gv * input[row + i * s];
                        }
                        if let Some(dx) = dx.as_deref_mut() {
                            for (i, gv) in grad.iter().enumerate() {
                                dx[row + i * s] += wv * *gv;
                            }
                        }
                    }
                });
                partial[tap] = acc;
            }
        }
    };
    let dx = if needs.x {
        let mut dx = vec![T::ZERO; planes * hw];
        dx.par_chunks_mut(hw).zip(partials.par_chunks_mut(kk + 1)).enumerate().for_each_init(
            || vec![T::ZERO; ohw],
            |dz, (plane, (dx, partial))| plane_work(plane, dz, partial, Some(dx)),
        );
        Some(dx)
    } else {
        partials
            .par_chunks_mut(kk + 1)
            .enumerate()
            .for_each_init(|| vec![T::ZERO; ohw], |dz, (plane, partial)| plane_work(plane, dz, partial, None));
        None
    };
    let mut dw = vec![T::ZERO; g.c * kk];
    let mut db = vec![T::ZERO; g.c];
    for (plane, partial) in partials.chunks(kk + 1).enumerate() {
        let c = plane % g.c;
        for (a, v) in dw[c * kk..(c + 1) * kk].iter_mut().zip(partial) {
            *a += *v;
        }
        db[c] += partial[kk];
    }
    ConvGrads { x: dx, weight: needs.weight.then_some(dw), bias: needs.bias.then_some(db) }
}
