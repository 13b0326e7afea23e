//! 2-D convolution as im2col + GEMM: forward, input gradient, weight gradient and bias gradient,
//! with an optional activation fused into the output (forward) and its mask (backward).
//!
//! Each image is one GEMM per group: `y[g] (o/g x oh*ow) = w[g] (o/g x c/g*kh*kw) · col`, where
//! `col` holds the input windows (im2col). Backward re-builds `col` per image and computes
//! `dw[g] += dz[g] · colᵀ` and `dcol = w[g]ᵀ · dz[g]`, scattered back by col2im. Batches are split
//! into one contiguous chunk of images per rayon thread (scratch buffers are allocated once per
//! chunk, weight gradients are summed over chunks at the end); a batch smaller than the thread
//! count hands the threads to the GEMM instead. A 1x1 convolution with stride 1 and no padding
//! skips im2col: the input plane already is `col`.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Result, Shape};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::activation::FusedActivation;
use crate::conv2d_batched;
use crate::conv2d_direct::{DirectConv, DirectScratch};
use crate::conv_geometry::{Conv2dParams, ConvGeometry, ConvGrads, Needs, Padding2d};
use crate::conv_spec::ConvSpec;
use crate::depthwise;
use crate::element::{contiguous_slice, sum, Float};
use crate::im2col::{col2im_rows, im2col_rows};
use crate::matmul::{matmul, matmul_into_rows, Mat};
use crate::max_pool::Pool2dParams;
use crate::max_pool::{pool_plane, Plane};
use crate::unpool::unpool_plane;
use crate::weighted_op::{impl_weighted_custom_ops, operand_slices, Operand, Operands, WeightedOp};
use crate::winograd;

/// Images per chunk (see [`chunking`]).
fn per_chunk_len(b: usize) -> usize {
    chunking(b).0
}

/// How a batch of `b` images is split over the rayon threads.
fn chunking(b: usize) -> (usize, usize) {
    let threads = rayon::current_num_threads().max(1);
    if b >= threads {
        (b.div_ceil(threads), 1)
    } else {
        (1, threads)
    }
}

/// One image's `act(conv(x, w) + bias)` into `y_img`, using `col` as im2col scratch.
#[inline(always)]
fn forward_image<T: Float>(x_img: &[T], conv: ConvSpec<'_, T>, col: &mut [T], y_img: &mut [T], gemm_threads: usize) {
    let ConvSpec { weight, bias, act, g } = conv;
    let (og, ck, ohw) = (g.og(), g.ck(), g.ohw());
    // With im2col, the output goes in blocks of rows whose columns stay in L2 from im2col through
    // the GEMM to the bias and activation (the stem's whole 147 x 12544 matrix is 7 MiB). A
    // pointwise convolution reads its input in place, in one GEMM: blocks of its columns
    // measured no faster on EfficientNet-Lite0's expansions (within this machine's noise).
    let block = if g.pointwise() { ohw } else { im2col_block_rows::<T>(g) * g.ow };
    for grp in 0..g.p.groups {
        let x_g = &x_img[grp * g.cg() * g.h * g.w..(grp + 1) * g.cg() * g.h * g.w];
        let y_g = &mut y_img[grp * og * ohw..(grp + 1) * og * ohw];
        let w_g = Mat::rows(&weight[grp * og * ck..(grp + 1) * og * ck], ck);
        for first in (0..ohw).step_by(block) {
            let cols = block.min(ohw - first);
            if let Some(bias) = bias {
                for (o, row) in y_g.chunks_mut(ohw).enumerate() {
                    row[first..first + cols].fill(bias[grp * og + o]);
                }
            }
            let rhs = if g.pointwise() {
                Mat { data: &x_g[first..], row_stride: ohw, col_stride: 1 }
            } else {
                im2col_rows(x_g, g, col, cols, first / g.ow..(first + cols) / g.ow);
                Mat::rows(&col[..ck * cols], cols)
            };
            matmul_into_rows(&mut y_g[first..], ohw, (og, cols, ck), w_g, rhs, bias.is_some(), gemm_threads);
            for row in y_g.chunks_mut(ohw) {
                act.apply(&mut row[first..first + cols]);
            }
        }
    }
}

/// Bytes of input columns and output the forward GEMM takes at once: half of a core's L2.
const FORWARD_BLOCK_BYTES: usize = 512 << 10;

/// Output rows per block of the forward pass's im2col + GEMM (at least one).
fn im2col_block_rows<T>(g: &ConvGeometry) -> usize {
    let row_bytes = (g.ck() + g.og()) * g.ow * std::mem::size_of::<T>();
    let fitting = FORWARD_BLOCK_BYTES / row_bytes.max(1);
    // Whole multiples of 16 columns where they fit: the GEMM's last columns then fill a vector
    // register (168 columns of 28-wide rows ran 40 of them on a 48-wide edge kernel).
    let unit = 16 / gcd(g.ow.max(1), 16);
    let rows = if fitting >= unit { fitting / unit * unit } else { fitting };
    rows.clamp(1, g.oh.max(1))
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Forward pass: `act(conv(x, w) + bias)`.
pub(crate) fn forward<T: Float>(x: &[T], conv: ConvSpec<'_, T>) -> Vec<T> {
    let ConvSpec { weight, bias, g, .. } = conv;
    if depthwise::applies(g) {
        return depthwise::forward(x, conv);
    }
    let (direct, winograd) = plan(weight, bias, g);
    forward_planned(x, conv, direct, winograd)
}

/// Which fast kernel a forward convolution runs on: Winograd's F(2x2, 3x3) (its transformed
/// weights) where it applies and is the faster, else the direct kernel where it applies; neither
/// means im2col + GEMM.
fn plan<T: Float>(weight: &[T], bias: Option<&[T]>, g: &ConvGeometry) -> (Option<DirectConv>, Option<Vec<T>>) {
    if winograd::applies(g) && winograd::beats_direct(g) {
        return (None, Some(winograd::transform_weights(weight, g)));
    }
    match DirectConv::plan(weight, bias, g) {
        Some(direct) => (Some(direct), None),
        None => (None, winograd::applies(g).then(|| winograd::transform_weights(weight, g))),
    }
}

/// [`forward`] once the direct kernel or Winograd's transformed weights are planned (or
/// neither: im2col + GEMM).
fn forward_planned<T: Float>(
    x: &[T],
    conv: ConvSpec<'_, T>,
    direct: Option<DirectConv>,
    winograd: Option<Vec<T>>,
) -> Vec<T> {
    let g = conv.g;
    if direct.is_none() && winograd.is_none() && conv2d_batched::applies(g) {
        return conv2d_batched::forward(x, conv, conv2d_batched::BATCH_BYTES);
    }
    let mut y = crate::element::zeroed(g.b * g.out_image());
    let (per_chunk, gemm_threads) = chunking(g.b);
    y.par_chunks_mut(per_chunk * g.out_image()).enumerate().for_each(|(chunk, ys)| {
        if let Some(u) = &winograd {
            let first = chunk * per_chunk * g.in_image();
            let n = ys.len() / g.out_image();
            winograd::forward(&x[first..first + n * g.in_image()], conv, u, ys, gemm_threads);
            return;
        }
        let mut scratch = Scratch::new(g, direct.as_ref());
        for (i, y_img) in ys.chunks_mut(g.out_image()).enumerate() {
            let image = chunk * per_chunk + i;
            let x_img = &x[image * g.in_image()..(image + 1) * g.in_image()];
            scratch.forward_image(x_img, conv, y_img, gemm_threads);
        }
    });
    y
}

/// A thread's scratch for the forward pass: the direct kernel's buffers where it applies,
/// else the im2col matrix.
enum Scratch<'a, T> {
    Direct(&'a DirectConv, DirectScratch),
    Gemm(Vec<T>),
}

impl<'a, T: Float> Scratch<'a, T> {
    fn new(g: &ConvGeometry, direct: Option<&'a DirectConv>) -> Self {
        match direct {
            Some(d) => Self::Direct(d, d.scratch()),
            None if g.pointwise() => Self::Gemm(Vec::new()),
            None => Self::Gemm(vec![T::ZERO; g.ck() * im2col_block_rows::<T>(g) * g.ow]),
        }
    }

    #[inline(always)]
    fn forward_image(&mut self, x_img: &[T], conv: ConvSpec<'_, T>, y_img: &mut [T], gemm_threads: usize) {
        match self {
            Self::Direct(d, s) => d.forward_image(x_img, conv.act, s, y_img),
            Self::Gemm(col) => forward_image(x_img, conv, col, y_img, gemm_threads),
        }
    }
}

/// Forward pass with a max pool after the activation: returns the pooled output and, with
/// `record`, per pooled cell the index (within its channel plane) of the window's first maximum
/// (else no indices). The full resolution output only ever exists one image at a time, in cache.
pub(crate) fn forward_pooled<T: Float>(
    x: &[T],
    conv: ConvSpec<'_, T>,
    pool: &Plane,
    record: bool,
) -> (Vec<T>, Vec<u32>) {
    let ConvSpec { weight, bias, act, g } = conv;
    let pooled_image = g.o * pool.oh * pool.ow;
    let mut y = crate::element::zeroed(g.b * pooled_image);
    let mut indices = vec![0u32; if record { g.b * pooled_image } else { 0 }];
    // Without indices, every chunk gets an empty slice.
    let index_chunk = if record { per_chunk_len(g.b) * pooled_image } else { 1 };
    let (per_chunk, gemm_threads) = chunking(g.b);
    let direct = DirectConv::plan(weight, bias, g);
    let mut index_chunks: Vec<&mut [u32]> = indices.chunks_mut(index_chunk).collect();
    index_chunks.resize_with(g.b.div_ceil(per_chunk), Default::default);
    y.par_chunks_mut(per_chunk * pooled_image).zip(index_chunks.into_par_iter()).enumerate().for_each(
        |(chunk, (ys, ix))| {
            let mut scratch = Scratch::new(g, direct.as_ref());
            let mut full = if direct.is_some() { Vec::new() } else { vec![T::ZERO; g.out_image()] };
            for (i, y_img) in ys.chunks_mut(pooled_image).enumerate() {
                let image = chunk * per_chunk + i;
                let x_img = &x[image * g.in_image()..(image + 1) * g.in_image()];
                let mut ix_img = record.then(|| &mut ix[i * pooled_image..(i + 1) * pooled_image]);
                if let Scratch::Direct(d, s) = &mut scratch {
                    d.forward_image_pooled(x_img, act, s, pool, y_img, ix_img);
                    continue;
                }
                scratch.forward_image(x_img, conv, &mut full, gemm_threads);
                let pohw = pool.oh * pool.ow;
                for (c, plane) in full.chunks(g.ohw()).enumerate() {
                    let cells = c * pohw..(c + 1) * pohw;
                    let ix_plane = ix_img.as_deref_mut().map(|ix| &mut ix[cells.clone()]);
                    pool_plane(plane, &mut y_img[cells], ix_plane, pool);
                }
            }
        },
    );
    (y, indices)
}

/// Where the gradient arriving at the convolution comes from.
#[derive(Clone, Copy)]
pub(crate) enum Upstream<'a, T> {
    /// The op's own output `y` and its gradient `dy`.
    Direct { y: &'a [T], dy: &'a [T] },
    /// A fused max pool: pooled output `y`, its gradient `dy`, and each pooled cell's argmax.
    Pooled { y: &'a [T], dy: &'a [T], indices: &'a [u32], pool: &'a Plane },
}

/// Backward pass given the forward output `y` (for the activation's mask) and its gradient `dy`.
pub(crate) fn backward<T: Float>(
    x: &[T],
    weight: &[T],
    upstream: Upstream<'_, T>,
    act: FusedActivation,
    g: &ConvGeometry,
    needs: Needs,
) -> ConvGrads<T> {
    if let (true, Upstream::Direct { y, dy }) = (depthwise::applies(g), upstream) {
        return depthwise::backward(x, weight, y, dy, act, g, needs);
    }
    // A stride-1 input gradient that is a convolution with a fast kernel runs as one, and a 3x3
    // stride-1 weight gradient by Winograd, both on the activation-masked gradient (computed once
    // here; what is left below reads it too).
    // (The mask is only computed where one of them may apply.)
    let may_dx = needs.x && input_gradient_geometry(g).is_some();
    let may_dw = needs.weight && winograd::weight_gradient_applies(g);
    let masked: Vec<T>;
    let (upstream, act, dx_fast, dw_fast) = match upstream {
        Upstream::Direct { y, dy } if may_dx || may_dw => {
            let dz = if act == FusedActivation::Identity {
                dy
            } else {
                let mut dz = crate::element::zeroed(dy.len());
                act.mask_gradient(y, dy, &mut dz);
                masked = dz;
                &masked
            };
            let dx = if may_dx { input_gradient_by_convolution(weight, dz, g) } else { None };
            let dw = may_dw.then(|| {
                let (per_chunk, gemm_threads) = chunking(g.b);
                winograd::weight_gradient(x, dz, g, per_chunk, gemm_threads)
            });
            if dx.is_none() && dw.is_none() {
                (upstream, act, None, None)
            } else {
                (Upstream::Direct { y, dy: dz }, FusedActivation::Identity, dx, dw)
            }
        }
        _ => (upstream, act, None, None),
    };
    let rest = Needs { x: needs.x && dx_fast.is_none(), weight: needs.weight && dw_fast.is_none(), bias: needs.bias };
    let mut grads = if rest.x || rest.weight || rest.bias {
        backward_by_gemm(x, weight, upstream, act, g, rest)
    } else {
        ConvGrads { x: None, weight: None, bias: None }
    };
    if dx_fast.is_some() {
        grads.x = dx_fast;
    }
    if dw_fast.is_some() {
        grads.weight = dw_fast;
    }
    grads
}

/// The geometry of a stride-1 convolution's input gradient as a convolution of the output
/// gradient: `dx = conv(dz, w')` with `w'[c][o] = w[o][c]` flipped in both axes and padding
/// `k - 1 - p`, which gives back the `h x w` input plane. Square kernels with `p < k` only.
fn input_gradient_geometry(g: &ConvGeometry) -> Option<ConvGeometry> {
    let p = g.p;
    let pad = g.pad.symmetric()?;
    let fits = p.stride == 1 && p.dilation == 1 && p.groups == 1 && g.kh == g.kw && g.kh > 1 && pad < g.kh;
    fits.then(|| {
        let padding = g.kh - 1 - pad;
        ConvGeometry {
            c: g.o,
            h: g.oh,
            w: g.ow,
            o: g.c,
            oh: g.h,
            ow: g.w,
            p: Conv2dParams { padding, ..p },
            pad: Padding2d::uniform(padding),
            ..*g
        }
    })
}

/// The input gradient as the convolution [`input_gradient_geometry`] describes, where that
/// convolution has the direct kernel or Winograd's (no `ck x oh*ow` columns, no col2im); else
/// `None` and the GEMM backward computes it.
fn input_gradient_by_convolution<T: Float>(weight: &[T], dz: &[T], g: &ConvGeometry) -> Option<Vec<T>> {
    let gt = input_gradient_geometry(g)?;
    let k = g.kh * g.kw;
    // In parallel over input channels: at 512 x 512 x 3 x 3 this copy alone took ~2 ms, and
    // on the calling thread the others waited.
    let mut flipped = crate::element::zeroed(weight.len());
    flipped.par_chunks_mut(g.o * k).enumerate().for_each(|(c, rows)| {
        for (o, dst) in rows.chunks_exact_mut(k).enumerate() {
            let src = &weight[(o * g.c + c) * k..(o * g.c + c + 1) * k];
            for (d, v) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *v;
            }
        }
    });
    let (direct, winograd) = plan(&flipped, None, &gt);
    if direct.is_none() && winograd.is_none() {
        return None;
    }
    let conv = ConvSpec { weight: &flipped, bias: None, act: FusedActivation::Identity, g: &gt };
    Some(forward_planned(dz, conv, direct, winograd))
}

/// [`backward`] by im2col + GEMM (and the direct kernel's weight gradient where it applies).
fn backward_by_gemm<T: Float>(
    x: &[T],
    weight: &[T],
    upstream: Upstream<'_, T>,
    act: FusedActivation,
    g: &ConvGeometry,
    needs: Needs,
) -> ConvGrads<T> {
    let (og, ck, ohw) = (g.og(), g.ck(), g.ohw());
    let (per_chunk, gemm_threads) = chunking(g.b);
    let chunks = g.b.div_ceil(per_chunk);
    // Where the direct kernel applies, the weight gradient runs on it: no im2col.
    let direct = if needs.weight { DirectConv::plan(weight, None, g) } else { None };
    // Small planes: the whole batch in a few GEMMs on every thread (all but a weight gradient
    // the direct kernel computes).
    let batched = match upstream {
        Upstream::Direct { y, dy } if conv2d_batched::applies(g) => {
            let asked = Needs { weight: needs.weight && direct.is_none(), ..needs };
            let grads = conv2d_batched::backward(x, weight, (y, dy), act, g, asked, conv2d_batched::BATCH_BYTES);
            Some(grads)
        }
        _ => None,
    };
    let (batched_dx, batched_dw, batched_db) = match batched {
        Some(ConvGrads { x, weight, bias }) => (x, weight, bias),
        None => (None, None, None),
    };
    let needs = Needs {
        x: needs.x && batched_dx.is_none(),
        weight: needs.weight && batched_dw.is_none(),
        bias: needs.bias && batched_db.is_none(),
    };
    if !needs.x && !needs.weight && !needs.bias {
        return ConvGrads { x: batched_dx, weight: batched_dw, bias: batched_db };
    }
    let work = |chunk: usize, dx: Option<&mut [T]>| -> (Vec<T>, Vec<T>) {
        let mut dw = vec![T::ZERO; if needs.weight { g.o * ck } else { 0 }];
        let mut db = vec![T::ZERO; if needs.bias { g.o } else { 0 }];
        let mut direct_scratch = direct.as_ref().map(DirectConv::gradient_scratch);
        let im2col_for_dw = needs.weight && direct.is_none();
        let im2col_per_image = im2col_for_dw && !g.pointwise();
        let mut col = if im2col_per_image { vec![T::ZERO; ck * im2col_block_rows::<T>(g) * g.ow] } else { Vec::new() };
        let mut dcol = if g.pointwise() || dx.is_none() {
            Vec::new()
        } else {
            vec![T::ZERO; ck * im2col_block_rows::<T>(g) * g.ow]
        };
        let direct_identity = matches!(upstream, Upstream::Direct { .. }) && act == FusedActivation::Identity;
        let mut dz = if direct_identity { Vec::new() } else { vec![T::ZERO; g.out_image()] };
        let mut dx = dx;
        let first = chunk * per_chunk;
        for image in first..(first + per_chunk).min(g.b) {
            let dz_img: &[T] = match upstream {
                Upstream::Direct { y, dy } => {
                    let dy_img = &dy[image * g.out_image()..(image + 1) * g.out_image()];
                    if direct_identity {
                        dy_img
                    } else {
                        act.mask_gradient(&y[image * g.out_image()..(image + 1) * g.out_image()], dy_img, &mut dz);
                        &dz
                    }
                }
                Upstream::Pooled { y, dy, indices, pool } => {
                    // Each pooled gradient goes to its window's first maximum, through the
                    // activation's derivative (read off the pooled output, which is that
                    // maximum's activated value).
                    let pohw = pool.oh * pool.ow;
                    let at = image * g.o * pohw;
                    for (c, plane) in dz.chunks_mut(ohw).enumerate() {
                        let cells = at + c * pohw..at + (c + 1) * pohw;
                        let (ix, y, dy) = (&indices[cells.clone()], &y[cells.clone()], &dy[cells]);
                        unpool_plane(plane, ix, y, dy, act, pool);
                    }
                    &dz
                }
            };
            if needs.bias {
                for (o, row) in dz_img.chunks(ohw).enumerate() {
                    db[o] += sum(row);
                }
            }
            let x_img = &x[image * g.in_image()..(image + 1) * g.in_image()];
            for grp in 0..g.p.groups {
                let dz_g = &dz_img[grp * og * ohw..(grp + 1) * og * ohw];
                let in_group = grp * g.cg() * g.h * g.w..(grp + 1) * g.cg() * g.h * g.w;
                if let (Some(d), Some(s)) = (&direct, &mut direct_scratch) {
                    d.accumulate_weight_gradient(x_img, dz_img, s, &mut dw);
                } else if needs.weight {
                    let x_g = &x_img[in_group.clone()];
                    let dw_g = &mut dw[grp * og * ck..(grp + 1) * og * ck];
                    // dw[g] (og x ck) += dz[g] (og x ohw) · colᵀ (ohw x ck), with im2col a block of
                    // output rows at a time (as forward: the columns stay in cache).
                    let block = if g.pointwise() { ohw } else { im2col_block_rows::<T>(g) * g.ow };
                    for first in (0..ohw).step_by(block) {
                        let cols = block.min(ohw - first);
                        let col_t = if g.pointwise() {
                            Mat::transposed(x_g, ohw)
                        } else {
                            im2col_rows(x_g, g, &mut col, cols, first / g.ow..(first + cols) / g.ow);
                            Mat::transposed(&col[..ck * cols], cols)
                        };
                        let dz_block = Mat { data: &dz_g[first..], row_stride: ohw, col_stride: 1 };
                        matmul(dw_g, (og, ck, cols), dz_block, col_t, true, gemm_threads);
                    }
                }
                if let Some(dx) = dx.as_deref_mut() {
                    let local = image - first;
                    let dx_img = &mut dx[local * g.in_image()..(local + 1) * g.in_image()];
                    let dx_g = &mut dx_img[in_group];
                    let w_t = Mat::transposed(&weight[grp * og * ck..(grp + 1) * og * ck], ck);
                    // dcol (ck x ohw) = w[g]ᵀ (ck x og) · dz[g] (og x ohw), a block of output rows
                    // at a time, each added back by col2im while in cache.
                    if g.pointwise() {
                        matmul(dx_g, (ck, ohw, og), w_t, Mat::rows(dz_g, ohw), false, gemm_threads);
                    } else {
                        let rows = im2col_block_rows::<T>(g);
                        for first in (0..g.oh).step_by(rows) {
                            let oys = first..(first + rows).min(g.oh);
                            let cols = oys.len() * g.ow;
                            let dz_block = Mat { data: &dz_g[first * g.ow..], row_stride: ohw, col_stride: 1 };
                            matmul(&mut dcol[..ck * cols], (ck, cols, og), w_t, dz_block, false, gemm_threads);
                            col2im_rows(&dcol[..ck * cols], g, dx_g, cols, oys);
                        }
                    }
                }
            }
        }
        if let (Some(d), Some(s)) = (&direct, &mut direct_scratch) {
            d.flush_weight_gradient(s, &mut dw);
        }
        (dw, db)
    };
    // Per chunk of images: (weight-gradient partial, bias-gradient partial).
    type Partials<T> = Vec<(Vec<T>, Vec<T>)>;
    let (dx, partials): (Option<Vec<T>>, Partials<T>) = if needs.x {
        let mut dx = crate::element::zeroed(g.b * g.in_image());
        let partials =
            dx.par_chunks_mut(per_chunk * g.in_image()).enumerate().map(|(chunk, dx)| work(chunk, Some(dx))).collect();
        (Some(dx), partials)
    } else {
        (None, (0..chunks).into_par_iter().map(|chunk| work(chunk, None)).collect())
    };
    let mut dw = needs.weight.then(|| vec![T::ZERO; g.o * ck]);
    let mut db = needs.bias.then(|| vec![T::ZERO; g.o]);
    for (pw, pb) in partials {
        if let Some(dw) = dw.as_mut() {
            for (a, v) in dw.iter_mut().zip(pw) {
                *a += v;
            }
        }
        if let Some(db) = db.as_mut() {
            for (a, v) in db.iter_mut().zip(pb) {
                *a += v;
            }
        }
    }
    ConvGrads { x: batched_dx.or(dx), weight: batched_dw.or(dw), bias: batched_db.or(db) }
}

/// The forward op: `(x, weight[, bias]) -> pool(act(conv2d(x, weight) + bias))`, the pool
/// optional. With a pool, the op keeps each pooled cell's argmax for its backward pass (as
/// PyTorch's `max_pool2d_with_indices` does) unless made for inference; then it keeps a copy of
/// the bias instead, and a backward pass recomputes the argmax first. An op value serves
/// exactly one forward call.
#[derive(Debug)]
pub(crate) struct Conv2dOp {
    params: Conv2dParams,
    /// The padding, side by side (uneven only for the depthwise kernel).
    pad: Padding2d,
    act: FusedActivation,
    pool: Option<Pool2dParams>,
    record_argmax: bool,
    indices: Mutex<Vec<u32>>,
    /// Inference: the bias the forward pass used (`Some(None)`: none), to recompute the argmax.
    bias_for_recompute: Mutex<Option<Option<CpuStorage>>>,
}

impl Conv2dOp {
    /// `record_argmax`: keep the pooled argmax for backward (training); without it the forward
    /// pass is cheaper and a backward pass recomputes it.
    pub fn new(params: Conv2dParams, act: FusedActivation, pool: Option<Pool2dParams>, record_argmax: bool) -> Self {
        let pad = Padding2d::uniform(params.padding);
        Self {
            params,
            pad,
            act,
            pool,
            record_argmax,
            indices: Mutex::new(Vec::new()),
            bias_for_recompute: Mutex::new(None),
        }
    }

    /// The op with uneven padding (`params.padding` is ignored); only for geometries the
    /// depthwise kernel takes, which reads it (the entry point checks).
    pub fn with_padding(mut self, pad: Padding2d) -> Self {
        self.pad = pad;
        self
    }

    fn pool_plane(&self, g: &ConvGeometry) -> Result<Option<Plane>> {
        match self.pool {
            None => Ok(None),
            Some(p) => {
                let (oh, ow) = p.output_size(g.oh, g.ow)?;
                Ok(Some(Plane { h: g.oh, w: g.ow, oh, ow, p }))
            }
        }
    }
}

impl WeightedOp for Conv2dOp {
    fn forward(&self, x: Operand<'_>, w: Operand<'_>, b: Option<Operand<'_>>) -> Result<(CpuStorage, Shape)> {
        let g = ConvGeometry::padded(x.1.shape(), w.1.shape(), self.params, self.pad)?;
        if let Some((_, lb)) = b {
            if lb.shape().dims() != [g.o] {
                candle_core::bail!("conv2d: bias shape {:?}, expected ({},)", lb.shape(), g.o)
            }
        }
        fn go<T: Float>(op: &Conv2dOp, g: &ConvGeometry, (xs, ws, bs): Operands<'_, T>) -> Result<CpuStorage> {
            let conv = ConvSpec { weight: ws, bias: bs, act: op.act, g };
            match op.pool_plane(g)? {
                None => Ok(T::wrap(forward(xs, conv))),
                Some(pool) => {
                    let (y, indices) = forward_pooled(xs, conv, &pool, op.record_argmax);
                    let (Ok(mut slot), Ok(mut bias)) = (op.indices.lock(), op.bias_for_recompute.lock()) else {
                        candle_core::bail!("conv2d: argmax store poisoned by an earlier panic")
                    };
                    *slot = indices;
                    *bias = (!op.record_argmax).then(|| bs.map(|b| T::wrap(b.to_vec())));
                    Ok(T::wrap(y))
                }
            }
        }
        let out = match x.0 {
            CpuStorage::F32(_) => go::<f32>(self, &g, operand_slices("conv2d", x, w, b)?)?,
            CpuStorage::F64(_) => go::<f64>(self, &g, operand_slices("conv2d", x, w, b)?)?,
            other => candle_core::bail!("conv2d: unsupported dtype {:?}", other.dtype()),
        };
        let shape = match self.pool_plane(&g)? {
            None => g.out_shape(),
            Some(pool) => Shape::from((g.b, g.o, pool.oh, pool.ow)),
        };
        Ok((out, shape))
    }

    /// Gradients for `x`, `weight` and (when given) `bias`, computed in one pass over the batch.
    fn gradients(&self, s: [Operand<'_>; 4], needs: [bool; 3]) -> Result<[Option<CpuStorage>; 3]> {
        let g = ConvGeometry::padded(s[0].1.shape(), s[1].1.shape(), self.params, self.pad)?;
        let needs = Needs { x: needs[0], weight: needs[1], bias: needs[2] };
        fn go<T: Float>(
            op: &Conv2dOp,
            g: &ConvGeometry,
            needs: Needs,
            s: [Operand<'_>; 4],
        ) -> Result<[Option<CpuStorage>; 3]> {
            let what = ["input", "weight", "output", "output gradient"];
            let [x, w, y, dy] = [0, 1, 2, 3].map(|i| contiguous_slice::<T>(s[i].0, s[i].1, "conv2d backward", what[i]));
            let (x, w, y, dy) = (x?, w?, y?, dy?);
            let grads = match op.pool_plane(g)? {
                None => backward(x, w, Upstream::Direct { y, dy }, op.act, g, needs),
                Some(pool) => {
                    let (Ok(mut indices), Ok(bias)) = (op.indices.lock(), op.bias_for_recompute.lock()) else {
                        candle_core::bail!("conv2d backward: argmax store poisoned by an earlier panic")
                    };
                    if let (true, Some(b)) = (indices.is_empty(), bias.as_ref()) {
                        // Made for inference: find the argmax now, by the same forward pass.
                        let b = match b {
                            Some(b) => {
                                Some(contiguous_slice::<T>(b, &Layout::contiguous(g.o), "conv2d backward", "bias")?)
                            }
                            None => None,
                        };
                        *indices = forward_pooled(x, ConvSpec { weight: w, bias: b, act: op.act, g }, &pool, true).1;
                    }
                    if indices.len() != y.len() {
                        candle_core::bail!("conv2d backward: no argmax recorded for this pooled output")
                    }
                    backward(x, w, Upstream::Pooled { y, dy, indices: &indices, pool: &pool }, op.act, g, needs)
                }
            };
            Ok([grads.x.map(T::wrap), grads.weight.map(T::wrap), grads.bias.map(T::wrap)])
        }
        match s[0].0 {
            CpuStorage::F32(_) => go::<f32>(self, &g, needs, s),
            CpuStorage::F64(_) => go::<f64>(self, &g, needs, s),
            other => candle_core::bail!("conv2d backward: unsupported dtype {:?}", other.dtype()),
        }
    }
}

impl_weighted_custom_ops!(Conv2dOp, "ember-conv2d", "ember-conv2d-bias");
