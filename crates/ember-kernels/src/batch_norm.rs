//! Batch normalisation as one op per layer: statistics, normalisation, affine transform and an
//! optional activation forward, and every gradient in one backward pass.
//!
//! On candle's ops a training-mode batch norm is two chained means for the mean, a broadcast
//! subtraction, a square and two more means for the variance, then a subtraction, a division, a
//! multiplication and an addition, each a full pass over the activation that allocates its
//! output, and backward walks all of them again with broadcasts and reductions of its own. Here
//! each channel is handled by one rayon task while its values are in cache: the mean, the
//! variance (a second pass over the cached values, so no cancellation), and the normalised
//! output. Backward reads the output gradient twice per channel (its two sums, then the input
//! gradient) and yields the weight and bias gradients from the same sums.
//!
//! In training a batch norm followed by a max pool (ResNet's stem: batch norm, ReLU, 3x3 / 2
//! pool) can run as one op too ([`batch_norm_train_max_pool`]): each full-resolution plane is
//! normalised into a scratch plane and pooled while in cache, recording each window's argmax,
//! and backward scatters the pooled gradient through the argmax into the channel's scratch
//! before the usual two passes. The full-resolution activation and its gradient never exist as
//! tensors: no pass writes or reads them, and candle does not accumulate the latter.

use std::sync::{Arc, Mutex, OnceLock};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::activation::FusedActivation;
use crate::element::{contiguous_slice, has_avx512f, with_avx512, Float};
use crate::max_pool::pool_plane;
use crate::no_grad;
use crate::pool_geometry::{Plane, Pool2dParams};
use crate::portable::native;
use crate::unpool::unpool_plane;
use crate::weighted_op::{impl_weighted_custom_ops, operand_slices, Operand, Operands, WeightedOp};

/// The per-channel statistics a training-mode batch norm used, which the layer folds into its
/// running averages.
#[derive(Debug, Clone)]
pub struct BatchStats {
    /// Mean of each channel over the batch and every position, `(c,)`, no gradient.
    pub mean: Tensor,
    /// Biased variance (divided by the number of values) of each channel, `(c,)`, no gradient.
    pub var: Tensor,
}

/// Batch normalisation with the batch's own statistics (training mode), followed by `act`:
/// `act((x - mean) / sqrt(var + eps) * weight + bias)` with `mean` and the biased `var` taken per
/// channel over the batch and every position. Returns the output and the statistics used.
/// Gradients flow to `xs` (through the statistics too), `weight` and `bias`.
///
/// # Shapes
/// - `xs`: `(n, c, ...)` (e.g. `(n, c)`, `(n, c, l)`, `(n, c, h, w)`)
/// - `weight`, `bias`: `(c,)`; absent means 1 and 0
/// - output: the input's shape; statistics `(c,)`
///
/// f32/f64 CPU tensors run as one op (one rayon task per channel, statistics accumulated in
/// f64); other dtypes and devices use [`candle_batch_norm_train`].
pub fn batch_norm_train(
    xs: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
    act: FusedActivation,
) -> Result<(Tensor, BatchStats)> {
    let (xs, weight, bias) = (no_grad::input(xs), weight.map(no_grad::input), bias.map(no_grad::input));
    let c = check_shapes("batch_norm_train", &xs, &[weight.as_ref(), bias.as_ref()])?;
    if !native(&xs) {
        return candle_batch_norm_train(&xs, weight.as_ref(), bias.as_ref(), eps, act);
    }
    let stats = Arc::new(OnceLock::new());
    let op = BatchNormOp::new(act, eps, true, stats.clone());
    let ys = apply(&xs, weight.as_ref(), bias.as_ref(), c, op)?;
    Ok((ys, batch_stats(&stats, &xs, "batch_norm_train")?))
}

/// The statistics a training-mode op's forward pass left in `stats`, as `(c,)` tensors of
/// `like`'s dtype and device.
fn batch_stats(stats: &OnceLock<ChannelStats>, like: &Tensor, op: &str) -> Result<BatchStats> {
    let Some(s) = stats.get() else { candle_core::bail!("{op}: the forward pass left no statistics") };
    let tensor = |v: &[f64]| Tensor::from_slice(v, v.len(), like.device())?.to_dtype(like.dtype());
    Ok(BatchStats { mean: tensor(&s.mean)?, var: tensor(&s.var)? })
}

/// [`batch_norm_train`] followed by a 2-D max pool, `pool(act(bn(x)))`, as one op: the
/// normalised activation is pooled plane by plane while in cache and each window's argmax kept
/// for the backward pass (as `max_pool2d_with_indices`), so the full-resolution activation is
/// never stored and its gradient never summed by candle. Returns the pooled output and the
/// batch statistics; gradients flow to `xs` (through the statistics too), `weight` and `bias`.
/// Equal to [`batch_norm_train`] followed by [`crate::max_pool2d`] (ties: the first maximum).
///
/// # Shapes
/// - `xs`: `(n, c, h, w)`
/// - `weight`, `bias`: `(c,)`; absent means 1 and 0
/// - output: `(n, c, oh, ow)` as [`Pool2dParams::output_size`] gives; statistics `(c,)`
///
/// f32/f64 CPU tensors run as one op; other dtypes and devices run the two layers in turn.
pub fn batch_norm_train_max_pool(
    xs: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
    act: FusedActivation,
    pool: Pool2dParams,
) -> Result<(Tensor, BatchStats)> {
    let c = check_shapes("batch_norm_train_max_pool", xs, &[weight, bias])?;
    let &[_, _, h, w] = xs.dims() else {
        candle_core::bail!(
            "batch_norm_train_max_pool: expected an input (batch, channels, height, width), got {:?}",
            xs.dims()
        )
    };
    pool.output_size(h, w)?;
    if !native(xs) {
        let (ys, stats) = batch_norm_train(xs, weight, bias, eps, act)?;
        return Ok((crate::max_pool2d(&ys, pool)?, stats));
    }
    let (xs, weight, bias) = (no_grad::input(xs), weight.map(no_grad::input), bias.map(no_grad::input));
    let stats = Arc::new(OnceLock::new());
    let op = BatchNormOp { pool: Some(pool), ..BatchNormOp::new(act, eps, true, stats.clone()) };
    let ys = apply(&xs, weight.as_ref(), bias.as_ref(), c, op)?;
    Ok((ys, batch_stats(&stats, &xs, "batch_norm_train_max_pool")?))
}

/// [`batch_norm_train`] of `xs` plus `shortcut`, through `act`: `act(bn(xs) + shortcut)`, the
/// end of a residual block (ResNet's `relu(bn2(conv2(x)) + shortcut)`), as one op. The sum is
/// formed while each channel is in cache, so the normalised tensor never exists and candle
/// accumulates no gradient for it; the shortcut's gradient is the one before the batch norm.
/// Returns the output and the batch statistics; gradients flow to `xs` (through the statistics
/// too), `shortcut`, `weight` and `bias`. Equal to [`batch_norm_train`] followed by
/// [`crate::add_activate`].
///
/// # Shapes
/// - `xs`, `shortcut`: `(n, c, ...)`, the same
/// - `weight`, `bias`: `(c,)`; absent means 1 and 0
/// - output: the input's shape; statistics `(c,)`
///
/// f32/f64 CPU tensors run as one op; other dtypes and devices run the two in turn.
pub fn batch_norm_train_add(
    xs: &Tensor,
    shortcut: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
    act: FusedActivation,
) -> Result<(Tensor, BatchStats)> {
    let c = check_shapes("batch_norm_train_add", xs, &[weight, bias])?;
    if shortcut.shape() != xs.shape() {
        candle_core::bail!("batch_norm_train_add: shortcut of shape {:?} for input {:?}", shortcut.dims(), xs.dims())
    }
    if !native(xs) || shortcut.dtype() != xs.dtype() {
        let (ys, stats) = batch_norm_train(xs, weight, bias, eps, FusedActivation::Identity)?;
        return Ok((crate::add_activate(&ys, shortcut, act)?, stats));
    }
    let (xs, shortcut) = (no_grad::input(xs), no_grad::input(shortcut));
    let (weight, bias) = (weight.map(no_grad::input), bias.map(no_grad::input));
    let dtype = xs.dtype();
    // Weight and bias side by side: the op's third operand is the shortcut (candle's custom ops
    // take three); the concatenation hands each its half of the gradient.
    let weight = match weight {
        Some(w) => w.to_dtype(dtype)?,
        None => Tensor::ones(c, dtype, xs.device())?,
    };
    let bias = match bias {
        Some(b) => b.to_dtype(dtype)?,
        None => Tensor::zeros(c, dtype, xs.device())?,
    };
    let affine = Tensor::cat(&[&weight, &bias], 0)?;
    let stats = Arc::new(OnceLock::new());
    let op = BatchNormAddOp(BatchNormOp::new(act, eps, true, stats.clone()));
    let ys = xs.contiguous()?.apply_op3(&affine, &shortcut.contiguous()?, op)?;
    Ok((ys, batch_stats(&stats, &xs, "batch_norm_train_add")?))
}

/// Batch normalisation with given statistics (evaluation mode, or a frozen layer in training),
/// followed by `act`: `act((x - mean) / sqrt(var + eps) * weight + bias)`, a per-channel affine
/// map. `mean` and `var` are constants (running statistics are buffers); gradients flow to
/// `xs`, `weight` and `bias`.
///
/// # Shapes
/// - `xs`: `(n, c, ...)`
/// - `mean`, `var`: `(c,)`
/// - `weight`, `bias`: `(c,)`; absent means 1 and 0
/// - output: the input's shape
///
/// f32/f64 CPU tensors run as one op; other dtypes and devices use [`candle_batch_norm_eval`].
pub fn batch_norm_eval(
    xs: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
    act: FusedActivation,
) -> Result<Tensor> {
    let (xs, weight, bias) = (no_grad::input(xs), weight.map(no_grad::input), bias.map(no_grad::input));
    let c = check_shapes("batch_norm_eval", &xs, &[weight.as_ref(), bias.as_ref(), Some(mean), Some(var)])?;
    if !native(&xs) {
        return candle_batch_norm_eval(&xs, mean, var, weight.as_ref(), bias.as_ref(), eps, act);
    }
    let mean = mean.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let var = var.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let invstd = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let stats = Arc::new(OnceLock::from(ChannelStats { mean, var, invstd }));
    apply(&xs, weight.as_ref(), bias.as_ref(), c, BatchNormOp::new(act, eps, false, stats))
}

/// [`batch_norm_train`] on candle's ops (the reference in tests and benchmarks, and the path
/// for dtypes and devices without a kernel).
pub fn candle_batch_norm_train(
    xs: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
    act: FusedActivation,
) -> Result<(Tensor, BatchStats)> {
    let c = check_shapes("batch_norm_train", xs, &[weight, bias])?;
    let x = as_ncl(xs, c)?;
    let mean = x.mean_keepdim(2)?.mean_keepdim(0)?;
    let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(2)?.mean_keepdim(0)?;
    let stats = BatchStats { mean: mean.detach().flatten_all()?, var: var.detach().flatten_all()? };
    let ys = candle_normalise(&x, &mean, &var, weight, bias, eps, act)?;
    Ok((ys.reshape(xs.shape())?, stats))
}

/// [`batch_norm_eval`] on candle's ops (the reference in tests and benchmarks, and the path for
/// dtypes and devices without a kernel).
pub fn candle_batch_norm_eval(
    xs: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
    act: FusedActivation,
) -> Result<Tensor> {
    let c = check_shapes("batch_norm_eval", xs, &[weight, bias, Some(mean), Some(var)])?;
    let x = as_ncl(xs, c)?;
    let (mean, var) = (mean.detach().reshape((1, c, 1))?, var.detach().reshape((1, c, 1))?);
    candle_normalise(&x, &mean, &var, weight, bias, eps, act)?.reshape(xs.shape())
}

/// `act((x - mean) / sqrt(var + eps) * weight + bias)` on `(n, c, l)` with `(1, c, 1)` statistics.
fn candle_normalise(
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
    act: FusedActivation,
) -> Result<Tensor> {
    let c = x.dim(1)?;
    let mut y = x.broadcast_sub(mean)?.broadcast_div(&(var + eps)?.sqrt()?)?;
    if let Some(w) = weight {
        y = y.broadcast_mul(&w.reshape((1, c, 1))?)?;
    }
    if let Some(b) = bias {
        y = y.broadcast_add(&b.reshape((1, c, 1))?)?;
    }
    crate::activation::portable_activate(&y, act)
}

/// `xs` as `(n, c, l)`, `l` the product of the dimensions after the channel one.
fn as_ncl(xs: &Tensor, c: usize) -> Result<Tensor> {
    xs.reshape((xs.dim(0)?, c, xs.elem_count() / (xs.dim(0)? * c).max(1)))
}

/// Checks that `xs` is `(n, c, ...)` and every per-channel tensor `(c,)`; returns `c`.
fn check_shapes(op: &str, xs: &Tensor, per_channel: &[Option<&Tensor>]) -> Result<usize> {
    if xs.rank() < 2 {
        candle_core::bail!("{op}: expected an input (batch, channels, ...), got {:?}", xs.dims())
    }
    let c = xs.dim(1)?;
    for t in per_channel.iter().flatten() {
        if t.dims() != [c] {
            candle_core::bail!(
                "{op}: per-channel tensor of shape {:?} for input {:?}, expected ({c},)",
                t.dims(),
                xs.dims()
            )
        }
    }
    Ok(c)
}

/// Runs the op on contiguous operands; a missing weight becomes a constant 1 (which asks for no
/// gradient) so the op always has one.
fn apply(xs: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, c: usize, op: BatchNormOp) -> Result<Tensor> {
    let xs = xs.contiguous()?;
    let weight = match weight {
        Some(w) => w.to_dtype(xs.dtype())?.contiguous()?,
        None => Tensor::ones(c, xs.dtype(), xs.device())?,
    };
    match bias {
        Some(b) => xs.apply_op3(&weight, &b.to_dtype(xs.dtype())?.contiguous()?, op),
        None => xs.apply_op2(&weight, op),
    }
}

/// Per-channel statistics in f64: given (evaluation) or computed by the forward pass (training).
#[derive(Debug)]
struct ChannelStats {
    mean: Vec<f64>,
    /// Biased variance.
    var: Vec<f64>,
    /// `1 / sqrt(var + eps)`.
    invstd: Vec<f64>,
}

/// The batch norm op on `(x, weight[, bias])`.
#[derive(Debug, Clone)]
struct BatchNormOp {
    act: FusedActivation,
    eps: f64,
    /// Whether the forward pass computes the statistics from the batch (training mode; the
    /// backward pass then differentiates through them too) or reads them from `stats`.
    batch: bool,
    /// Shared with the caller, who reads the batch statistics after the forward pass; the
    /// backward pass reads them as well.
    stats: Arc<OnceLock<ChannelStats>>,
    /// A max pool after the activation (training only; `(n, c, h, w)` inputs).
    pool: Option<Pool2dParams>,
    /// With a pool: each pooled cell's argmax within its plane, from the forward pass.
    indices: Arc<Mutex<Vec<u32>>>,
}

impl BatchNormOp {
    fn new(act: FusedActivation, eps: f64, batch: bool, stats: Arc<OnceLock<ChannelStats>>) -> Self {
        Self { act, eps, batch, stats, pool: None, indices: Arc::default() }
    }

    /// Keeps the forward pass's batch statistics `(mean, biased var)` per channel for the caller
    /// and the backward pass.
    fn keep_batch_stats(&self, stats: Vec<(f64, f64)>, name: &str) -> Result<()> {
        let (mean, var): (Vec<f64>, Vec<f64>) = stats.into_iter().unzip();
        let invstd = var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
        if self.stats.set(ChannelStats { mean, var, invstd }).is_err() {
            candle_core::bail!("{name}: one op ran its forward pass twice")
        }
        Ok(())
    }

    /// The pool's plane geometry for an input layout, when the op has a pool.
    fn pool_plane(&self, layout: &Layout) -> Result<Option<Plane>> {
        let Some(p) = self.pool else { return Ok(None) };
        let &[_, _, h, w] = layout.shape().dims() else {
            candle_core::bail!("batch_norm with max pool: expected a 4-D input, got {:?}", layout.shape())
        };
        let (oh, ow) = p.output_size(h, w)?;
        Ok(Some(Plane { h, w, oh, ow, p }))
    }
}

/// `(n, c, l)` of an input layout of rank 2 or more.
fn ncl(layout: &Layout) -> (usize, usize, usize) {
    let dims = layout.shape().dims();
    (dims[0], dims[1], dims[2..].iter().product())
}

/// The `l`-element planes of an `(n, c, l)` buffer in channel-major order: entries
/// `ch * n .. (ch + 1) * n` are channel `ch`'s planes in batch order, so one task can own all of
/// a channel's output without unsafe code.
fn channel_major_planes<T>(data: &mut [T], (n, c, l): (usize, usize, usize)) -> Vec<&mut [T]> {
    let mut slots: Vec<Option<&mut [T]>> = Vec::with_capacity(n * c);
    slots.resize_with(n * c, || None);
    for (p, plane) in data.chunks_mut(l).enumerate() {
        slots[(p % c) * n + p / c] = Some(plane);
    }
    slots.into_iter().flatten().collect()
}

/// [`channel_major_planes`] of `data` where `needed`, else `n * c` empty slices in their place.
fn planes_or_empty<T>(data: &mut [T], needed: bool, (n, c, l): (usize, usize, usize)) -> Vec<&mut [T]> {
    if needed {
        channel_major_planes(data, (n, c, l))
    } else {
        (0..n * c).map(|_| Default::default()).collect()
    }
}

/// Plane `i` of channel `ch` of a contiguous `(n, c, l)` slice.
#[inline]
fn plane<T>(data: &[T], i: usize, ch: usize, (_, c, l): (usize, usize, usize)) -> &[T] {
    &data[(i * c + ch) * l..(i * c + ch + 1) * l]
}

/// Channels per rayon task at least, so that tasks over tiny channels (a `(batch, features)`
/// input) are not dominated by scheduling.
fn min_channels_per_task(values_per_channel: usize) -> usize {
    (1 << 14) / values_per_channel.max(1) + 1
}

/// `Σ v` in f64, in 8 independent lanes (vectorises; one accumulator would be a serial chain).
#[inline(always)]
fn sum_f64<T: Float>(v: &[T]) -> f64 {
    let mut lanes = [0f64; 8];
    let mut chunks = v.chunks_exact(8);
    for ch in &mut chunks {
        for (a, x) in lanes.iter_mut().zip(ch) {
            *a += x.to_f64();
        }
    }
    chunks.remainder().iter().map(|x| x.to_f64()).sum::<f64>() + lanes.iter().sum::<f64>()
}

/// `Σ (v - mean)²` in f64, in 8 lanes.
#[inline(always)]
fn sum_sq_dev<T: Float>(v: &[T], mean: f64) -> f64 {
    let mut lanes = [0f64; 8];
    let mut chunks = v.chunks_exact(8);
    for ch in &mut chunks {
        for (a, x) in lanes.iter_mut().zip(ch) {
            let d = x.to_f64() - mean;
            *a += d * d;
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|x| (x.to_f64() - mean) * (x.to_f64() - mean)).sum();
    tail + lanes.iter().sum::<f64>()
}

/// `(Σ g, Σ g·(x - mean))` in f64, in 8 lanes each.
#[inline(always)]
fn sum_grad_dev<T: Float>(g: &[T], x: &[T], mean: f64) -> (f64, f64) {
    let (mut s, mut sx) = ([0f64; 8], [0f64; 8]);
    let (mut gc, mut xc) = (g.chunks_exact(8), x.chunks_exact(8));
    for (gch, xch) in (&mut gc).zip(&mut xc) {
        for k in 0..8 {
            let gv = gch[k].to_f64();
            s[k] += gv;
            sx[k] += gv * (xch[k].to_f64() - mean);
        }
    }
    let (mut ts, mut tsx) = (0.0, 0.0);
    for (gv, xv) in gc.remainder().iter().zip(xc.remainder()) {
        ts += gv.to_f64();
        tsx += gv.to_f64() * (xv.to_f64() - mean);
    }
    (ts + s.iter().sum::<f64>(), tsx + sx.iter().sum::<f64>())
}

/// Forward pass, `pool(act(bn(x) + shortcut))` (either optional): returns the output, each
/// channel's `(mean, biased var)` (computed in training mode, else the given ones) and with
/// `pool` each pooled cell's argmax.
#[allow(clippy::too_many_arguments)]
fn forward<T: Float>(
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    given: Option<&ChannelStats>,
    act: FusedActivation,
    eps: f64,
    dims: (usize, usize, usize),
    (shortcut, pool): (Option<&[T]>, Option<&Plane>),
) -> (Vec<T>, Vec<(f64, f64)>, Vec<u32>) {
    let (n, c, l) = dims;
    let count = (n * l) as f64;
    let out_len = pool.map_or(l, |p| p.oh * p.ow);
    let mut y = crate::element::zeroed(n * c * out_len);
    let mut indices = if pool.is_some() { vec![0u32; y.len()] } else { Vec::new() };
    if x.is_empty() {
        // No values: the statistics are 0/0 (NaN), as candle's means give.
        return (y, vec![(f64::NAN, f64::NAN); c], indices);
    }
    let mut planes = channel_major_planes(&mut y, (n, c, out_len));
    let mut index_planes = planes_or_empty(&mut indices, pool.is_some(), (n, c, out_len));
    let stats = planes
        .par_chunks_mut(n)
        .zip(index_planes.par_chunks_mut(n))
        .enumerate()
        .with_min_len(min_channels_per_task(n * l))
        .map_init(Vec::new, |scratch, (ch, (out, ix))| {
            with_avx512(|| {
                let (mean, var, invstd) = match given {
                    Some(s) => (s.mean[ch], s.var[ch], s.invstd[ch]),
                    None => {
                        // Two passes over the channel while it is in cache: Σx, then Σ(x - mean)²,
                        // which (unlike Σx² - (Σx)²/n) loses nothing to cancellation.
                        let mean = (0..n).map(|i| sum_f64(plane(x, i, ch, dims))).sum::<f64>() / count;
                        let var = (0..n).map(|i| sum_sq_dev(plane(x, i, ch, dims), mean)).sum::<f64>() / count;
                        (mean, var, 1.0 / (var + eps).sqrt())
                    }
                };
                // (x - m)·scale + shift with m the mean rounded to T and the rounding folded into
                // the shift: x - m is exact for values near the mean (Sterbenz), so a mean that is
                // large against the spread costs no digits (x·scale + (b - mean·scale) would).
                let m = T::from_f64(mean);
                let scale_f64 = w[ch].to_f64() * invstd;
                let shift = T::from_f64(b.map_or(0.0, |b| b[ch].to_f64()) - (mean - m.to_f64()) * scale_f64);
                let scale = T::from_f64(scale_f64);
                for (i, (out, ix)) in out.iter_mut().zip(ix.iter_mut()).enumerate() {
                    // With a pool, each plane is normalised into scratch and pooled from there.
                    let full: &mut [T] = match pool {
                        Some(_) => {
                            scratch.resize(l, T::ZERO);
                            scratch
                        }
                        None => out,
                    };
                    match shortcut {
                        Some(sc) => {
                            for ((o, v), r) in full.iter_mut().zip(plane(x, i, ch, dims)).zip(plane(sc, i, ch, dims)) {
                                *o = (*v - m) * scale + shift + *r;
                            }
                        }
                        None => {
                            for (o, v) in full.iter_mut().zip(plane(x, i, ch, dims)) {
                                *o = (*v - m) * scale + shift;
                            }
                        }
                    }
                    act.apply(full);
                    if let Some(p) = pool {
                        pool_plane(&scratch[..], out, Some(ix), p);
                    }
                }
                (mean, var)
            })
        })
        .collect();
    (y, stats, indices)
}

/// What every channel of one backward pass reads.
struct BackwardInputs<'a, T> {
    x: &'a [T],
    w: &'a [T],
    y: &'a [T],
    dy: &'a [T],
    stats: &'a ChannelStats,
    batch: bool,
    act: FusedActivation,
    dims: (usize, usize, usize),
    /// Whether the two per-channel sums are needed (batch statistics, or a weight or bias
    /// gradient).
    sums_needed: bool,
    /// With a pool: its geometry and the forward pass's argmax (`y` and `dy` are then pooled).
    pool: Option<(&'a Plane, &'a [u32])>,
}

/// One channel's planes of the input gradient and of the shortcut's (a residual op's), each
/// `None` where it is not asked for.
type ChannelGrads<'a, 'b, T> = (Option<&'a mut [&'b mut [T]]>, Option<&'a mut [&'b mut [T]]>);

/// One channel's backward pass: its `(Σdz, Σdz·(x - mean))`, `dz` the gradient before the
/// activation, and its input gradient into `dx` when given.
#[inline(always)]
fn backward_channel<T: Float>(
    cx: &BackwardInputs<'_, T>,
    ch: usize,
    (dx, dshortcut): ChannelGrads<'_, '_, T>,
    scratch: &mut Vec<T>,
) -> (f64, f64) {
    let BackwardInputs { x, w, y, dy, stats, batch, act, dims, sums_needed, pool } = *cx;
    let (n, c, l) = dims;
    let count = (n * l) as f64;
    let identity = act == FusedActivation::Identity && pool.is_none();
    if !identity {
        // The activation's mask (after the pool's scatter, with a pool), applied once per
        // channel into scratch space that the second pass reads again.
        scratch.resize(n * l, T::ZERO);
        for (i, dz) in scratch.chunks_mut(l).enumerate() {
            match pool {
                Some((p, ix)) => {
                    let pooled = (n, c, p.oh * p.ow);
                    let (ix, y, dy) = (plane(ix, i, ch, pooled), plane(y, i, ch, pooled), plane(dy, i, ch, pooled));
                    unpool_plane(dz, ix, y, dy, act, p);
                }
                None => act.mask_gradient(plane(y, i, ch, dims), plane(dy, i, ch, dims), dz),
            }
        }
    }
    let scratch: &[T] = scratch;
    let dz_plane = |i: usize| if identity { plane(dy, i, ch, dims) } else { &scratch[i * l..(i + 1) * l] };
    if let Some(dshortcut) = dshortcut {
        // A residual sum's other operand gets the gradient before the batch norm, `dz`.
        for (i, out) in dshortcut.iter_mut().enumerate() {
            out.copy_from_slice(dz_plane(i));
        }
    }
    let mean = stats.mean[ch];
    // A plain loop, not a fold: everything here must inline into the AVX-512 copy.
    let (mut sum, mut sum_dev) = (0.0, 0.0);
    if sums_needed {
        for i in 0..n {
            let (a, b) = sum_grad_dev(dz_plane(i), plane(x, i, ch, dims), mean);
            sum += a;
            sum_dev += b;
        }
    }
    if let Some(dx) = dx {
        let (invstd, wv) = (stats.invstd[ch], w[ch].to_f64());
        // dx = w·invstd·(dz - Σdz/m - x̂·Σ(dz·x̂)/m) with x̂ = (x - mean)·invstd, as
        // a·dz + k·(x - mean) + c0; with given statistics only a·dz remains.
        let a = T::from_f64(wv * invstd);
        let (k, c0) = if batch {
            (-wv * invstd * invstd * invstd * sum_dev / count, -wv * invstd * sum / count)
        } else {
            (0.0, 0.0)
        };
        // As forward: x - m exact near the mean, m's rounding folded into the constant.
        let m = T::from_f64(mean);
        let (k, c0) = (T::from_f64(k), T::from_f64(c0 - k * (mean - m.to_f64())));
        for (i, out) in dx.iter_mut().enumerate() {
            let (dz, xp) = (dz_plane(i), plane(x, i, ch, dims));
            if batch {
                for ((d, g), v) in out.iter_mut().zip(dz).zip(xp) {
                    *d = a * *g + k * (*v - m) + c0;
                }
            } else {
                for (d, g) in out.iter_mut().zip(dz) {
                    *d = a * *g;
                }
            }
        }
    }
    (sum, sum_dev)
}

/// [`backward_channel`] compiled for AVX-512.
///
/// # Safety
/// AVX-512F must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn backward_channel_avx512<T: Float>(
    cx: &BackwardInputs<'_, T>,
    ch: usize,
    grads: ChannelGrads<'_, '_, T>,
    scratch: &mut Vec<T>,
) -> (f64, f64) {
    backward_channel(cx, ch, grads, scratch)
}

/// [`backward_channel`] for this CPU (AVX-512 where it has it).
fn backward_channel_here<T: Float>(
    cx: &BackwardInputs<'_, T>,
    ch: usize,
    grads: ChannelGrads<'_, '_, T>,
    scratch: &mut Vec<T>,
) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512f() {
        // SAFETY: AVX-512F is available (checked just above), the function's only requirement.
        return unsafe { backward_channel_avx512(cx, ch, grads, scratch) };
    }
    backward_channel(cx, ch, grads, scratch)
}

/// Backward pass: `[dx, dweight, dbias, dshortcut]`, each only when `needs` asks for it (the
/// last only for an op with a residual operand).
#[allow(clippy::too_many_arguments)]
fn backward<T: Float>(
    x: &[T],
    w: &[T],
    y: &[T],
    dy: &[T],
    stats: &ChannelStats,
    batch: bool,
    act: FusedActivation,
    dims: (usize, usize, usize),
    needs: [bool; 4],
    pool: Option<(&Plane, &[u32])>,
) -> [Option<Vec<T>>; 4] {
    let (n, c, l) = dims;
    let buffer = |needed: bool| if needed { crate::element::zeroed(x.len()) } else { Vec::new() };
    let (mut dx, mut dshortcut) = (buffer(needs[0]), buffer(needs[3]));
    // Each channel's (Σdz, Σdz·(x - mean)), dz the gradient before the activation.
    let mut sums = vec![(0f64, 0f64); c];
    let sums_needed = batch || needs[1] || needs[2];
    if !x.is_empty() && (needs[0] || needs[3] || sums_needed) {
        let (mut dx_planes, mut dshortcut_planes) =
            (planes_or_empty(&mut dx, needs[0], dims), planes_or_empty(&mut dshortcut, needs[3], dims));
        let cx = BackwardInputs { x, w, y, dy, stats, batch, act, dims, sums_needed, pool };
        dx_planes
            .par_chunks_mut(n)
            .zip(dshortcut_planes.par_chunks_mut(n))
            .zip(sums.par_iter_mut())
            .enumerate()
            .with_min_len(min_channels_per_task(n * l))
            .for_each_init(Vec::new, |scratch, (ch, ((dx, dsc), s))| {
                let grads = (needs[0].then_some(dx), needs[3].then_some(dsc));
                *s = backward_channel_here(&cx, ch, grads, scratch)
            });
    }
    let dw = needs[1].then(|| sums.iter().zip(&stats.invstd).map(|((_, sd), is)| T::from_f64(sd * is)).collect());
    let db = needs[2].then(|| sums.iter().map(|(s, _)| T::from_f64(*s)).collect());
    [needs[0].then_some(dx), dw, db, needs[3].then_some(dshortcut)]
}

impl WeightedOp for BatchNormOp {
    fn forward(&self, x: Operand<'_>, w: Operand<'_>, b: Option<Operand<'_>>) -> Result<(CpuStorage, Shape)> {
        let dims = ncl(x.1);
        let pool = self.pool_plane(x.1)?;
        fn go<T: Float>(
            op: &BatchNormOp,
            (xs, ws, bs): Operands<'_, T>,
            dims: (usize, usize, usize),
            pool: Option<&Plane>,
        ) -> Result<CpuStorage> {
            let given = if op.batch { None } else { op.stats.get() };
            if !op.batch && given.is_none() {
                candle_core::bail!("batch_norm: evaluation mode without statistics")
            }
            let (y, stats, indices) = forward(xs, ws, bs, given, op.act, op.eps, dims, (None, pool));
            if pool.is_some() {
                let Ok(mut slot) = op.indices.lock() else {
                    candle_core::bail!("batch_norm: argmax store poisoned by an earlier panic")
                };
                *slot = indices;
            }
            if op.batch {
                op.keep_batch_stats(stats, "batch_norm")?;
            }
            Ok(T::wrap(y))
        }
        let out = match x.0 {
            CpuStorage::F32(_) => go::<f32>(self, operand_slices("batch_norm", x, w, b)?, dims, pool.as_ref())?,
            CpuStorage::F64(_) => go::<f64>(self, operand_slices("batch_norm", x, w, b)?, dims, pool.as_ref())?,
            other => candle_core::bail!("batch_norm: unsupported dtype {:?}", other.dtype()),
        };
        let shape = match pool {
            Some(p) => Shape::from((dims.0, dims.1, p.oh, p.ow)),
            None => x.1.shape().clone(),
        };
        Ok((out, shape))
    }

    fn gradients(&self, s: [Operand<'_>; 4], needs: [bool; 3]) -> Result<[Option<CpuStorage>; 3]> {
        let dims = ncl(s[0].1);
        let Some(stats) = self.stats.get() else {
            candle_core::bail!("batch_norm backward: no statistics from the forward pass")
        };
        let pool = self.pool_plane(s[0].1)?;
        let Ok(indices) = self.indices.lock() else {
            candle_core::bail!("batch_norm backward: argmax store poisoned by an earlier panic")
        };
        let pool = match pool {
            Some(p) if indices.len() == s[2].1.shape().elem_count() => Some((p, &indices[..])),
            Some(_) => candle_core::bail!("batch_norm backward: no argmax recorded for this pooled output"),
            None => None,
        };
        fn go<T: Float>(
            op: &BatchNormOp,
            stats: &ChannelStats,
            s: [Operand<'_>; 4],
            dims: (usize, usize, usize),
            needs: [bool; 3],
            pool: Option<(&Plane, &[u32])>,
        ) -> Result<[Option<CpuStorage>; 3]> {
            let what = ["input", "weight", "output", "output gradient"];
            let [x, w, y, dy] =
                [0, 1, 2, 3].map(|k| contiguous_slice::<T>(s[k].0, s[k].1, "batch_norm backward", what[k]));
            let [needs_x, needs_w, needs_b] = needs;
            let [dx, dw, db, _] =
                backward(x?, w?, y?, dy?, stats, op.batch, op.act, dims, [needs_x, needs_w, needs_b, false], pool);
            Ok([dx, dw, db].map(|g| g.map(T::wrap)))
        }
        let pool = pool.as_ref().map(|(p, ix)| (p, *ix));
        match s[0].0 {
            CpuStorage::F32(_) => go::<f32>(self, stats, s, dims, needs, pool),
            CpuStorage::F64(_) => go::<f64>(self, stats, s, dims, needs, pool),
            other => candle_core::bail!("batch_norm backward: unsupported dtype {:?}", other.dtype()),
        }
    }
}

impl_weighted_custom_ops!(BatchNormOp, "ember-batch-norm", "ember-batch-norm-bias");

/// The training-mode batch norm with a residual sum, on `(x, [weight, bias], shortcut)`: the
/// [`WeightedOp`] shape with the weight and bias side by side as its weight and the shortcut
/// in its bias's place (see [`batch_norm_train_add`]).
#[derive(Debug, Clone)]
struct BatchNormAddOp(BatchNormOp);

impl WeightedOp for BatchNormAddOp {
    fn forward(&self, x: Operand<'_>, wb: Operand<'_>, shortcut: Option<Operand<'_>>) -> Result<(CpuStorage, Shape)> {
        let dims = ncl(x.1);
        let Some(shortcut) = shortcut else { candle_core::bail!("batch_norm_add: no shortcut operand") };
        if wb.1.shape().elem_count() != 2 * dims.1 || shortcut.1.shape() != x.1.shape() {
            candle_core::bail!(
                "batch_norm_add: operand shapes {:?}, {:?}, {:?}",
                x.1.shape(),
                wb.1.shape(),
                shortcut.1.shape()
            )
        }
        fn go<T: Float>(
            op: &BatchNormOp,
            (xs, wb, sc): Operands<'_, T>,
            dims: (usize, usize, usize),
        ) -> Result<CpuStorage> {
            let (w, b) = wb.split_at(dims.1);
            let (y, stats, _) = forward(xs, w, Some(b), None, op.act, op.eps, dims, (sc, None));
            op.keep_batch_stats(stats, "batch_norm_add")?;
            Ok(T::wrap(y))
        }
        let out = match x.0 {
            CpuStorage::F32(_) => go::<f32>(&self.0, operand_slices("batch_norm_add", x, wb, Some(shortcut))?, dims)?,
            CpuStorage::F64(_) => go::<f64>(&self.0, operand_slices("batch_norm_add", x, wb, Some(shortcut))?, dims)?,
            other => candle_core::bail!("batch_norm_add: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, x.1.shape().clone()))
    }

    /// `[dx, d[weight, bias], dshortcut]`.
    fn gradients(&self, s: [Operand<'_>; 4], needs: [bool; 3]) -> Result<[Option<CpuStorage>; 3]> {
        let dims = ncl(s[0].1);
        let Some(stats) = self.0.stats.get() else {
            candle_core::bail!("batch_norm_add backward: no statistics from the forward pass")
        };
        fn go<T: Float>(
            op: &BatchNormOp,
            stats: &ChannelStats,
            s: [Operand<'_>; 4],
            dims: (usize, usize, usize),
            [needs_x, needs_affine, needs_shortcut]: [bool; 3],
        ) -> Result<[Option<CpuStorage>; 3]> {
            let what = ["input", "weight and bias", "output", "output gradient"];
            let [x, wb, y, dy] =
                [0, 1, 2, 3].map(|k| contiguous_slice::<T>(s[k].0, s[k].1, "batch_norm_add backward", what[k]));
            let wb = wb?;
            let needs = [needs_x, needs_affine, needs_affine, needs_shortcut];
            let [dx, dw, db, dsc] = backward(x?, &wb[..dims.1], y?, dy?, stats, true, op.act, dims, needs, None);
            let affine = dw.zip(db).map(|(mut dw, db)| {
                dw.extend(db);
                dw
            });
            Ok([dx, affine, dsc].map(|g| g.map(T::wrap)))
        }
        match s[0].0 {
            CpuStorage::F32(_) => go::<f32>(&self.0, stats, s, dims, needs),
            CpuStorage::F64(_) => go::<f64>(&self.0, stats, s, dims, needs),
            other => candle_core::bail!("batch_norm_add backward: unsupported dtype {:?}", other.dtype()),
        }
    }
}

impl_weighted_custom_ops!(BatchNormAddOp, "ember-batch-norm-add-2", "ember-batch-norm-add");
