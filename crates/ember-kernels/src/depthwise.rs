//! Depthwise convolution (`groups = c_in = c_out`) computed directly, one plane at a time.
//!
//! A depthwise filter is `kh x kw` taps per channel, far too small for a GEMM to pay off (and
//! candle runs grouped convolutions one group at a time: a narrow, a convolution and a concat per
//! channel). Each plane is first copied into a zero-padded scratch plane split into its
//! `stride x stride` *phases* (phase `(ry, rx)` holds the padded rows `ry, ry + s, ...` and
//! columns `rx, rx + s, ...`), so that every tap of the filter, strided or not, reads one
//! contiguous run of a phase: the output is computed over the phase's full width ("wide" rows
//! whose last columns are discarded), and a tap is a single `axpy` over the whole plane, whatever
//! the plane's size — 7x7 planes vectorise as well as 112x112 ones. The backward pass uses the
//! same layout: the weight gradient of a tap is one dot product, the input gradient one `axpy`
//! per tap into a phase-split gradient that is then copied back out of the padding.
//!
//! The per-plane work is compiled twice, once for AVX-512 (chosen at run time) and once for the
//! baseline. On AVX-512 the f32 forward pass also keeps a tile of outputs in registers across
//! all the taps, with fused multiply-adds.

use rayon::prelude::*;

use crate::activation::FusedActivation;
use crate::conv_geometry::{ConvGeometry, ConvGrads, Needs};
use crate::conv_spec::ConvSpec;
use crate::element::{as_f32, as_f32_mut, has_avx512f, sum, Float};
use crate::phase_split::{split, PhaseLayout};

/// Whether the direct depthwise kernel handles this geometry.
pub(crate) fn applies(g: &ConvGeometry) -> bool {
    g.p.groups > 1 && g.p.groups == g.c && g.o == g.c
}

/// Elements of the wide output processed per pass over the taps: 8 KiB of f32 stays in L1
/// while every tap is added into it.
const BLOCK: usize = 2048;

/// `dst += a * src` (the compiler vectorises it for the target features of its caller).
#[inline(always)]
fn axpy<T: Float>(dst: &mut [T], a: T, src: &[T]) {
    for (o, v) in dst.iter_mut().zip(src) {
        *o += a * *v;
    }
}

/// `Σ a[i] * b[i]` in 16 independent lanes (vectorises; a plain fold does not).
#[inline(always)]
fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    let mut lanes = [T::ZERO; 16];
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for ((l, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *l += *x * *y;
        }
    }
    let mut s = T::ZERO;
    for (x, y) in ar.iter().zip(br) {
        s += *x * *y;
    }
    for l in lanes {
        s += l;
    }
    s
}

/// The per-thread scratch of one call, `len` elements, zeroed when first made. Every plane of
/// the call shares the layout, so a plane only overwrites what the previous one wrote.
#[inline(always)]
fn scratch_for<T: Float>(scratch: &mut Vec<T>, len: usize) -> &mut [T] {
    if scratch.len() != len {
        scratch.clear();
        scratch.resize(len, T::ZERO);
    }
    scratch
}

/// Output elements one register-held tile accumulates over every tap (4 AVX-512 vectors of
/// f32): the tile is stored once, not once per tap.
const TILE: usize = 64;

/// Copies the phase-split gradient's in-plane part into one input plane's gradient (the inverse
/// of [`split`]; the padding's gradient is dropped).
#[inline(always)]
fn merge<T: Float>(g: &ConvGeometry, layout: &PhaseLayout, scratch: &[T], dx: &mut [T]) {
    let s = g.p.stride;
    layout.for_each_run(g, |to, start, count| {
        let src = &scratch[start..start + count];
        match s {
            1 => dx[to..to + count].copy_from_slice(src),
            2 => dx[to..].iter_mut().step_by(2).zip(src).for_each(|(d, v)| *d = *v),
            _ => dx[to..].iter_mut().step_by(s).zip(src).for_each(|(d, v)| *d = *v),
        }
    });
}

/// `wide[t] = bias + Σ_k taps[k] · phases[offsets[k] + t]`, one tile of [`TILE`] outputs at a
/// time, then the rest.
#[inline(always)]
fn wide_generic<T: Float>(phases: &[T], offsets: &[usize], taps: &[T], bias: T, wide: &mut [T]) {
    for (t, dst) in wide.chunks_mut(TILE).enumerate() {
        let start = t * TILE;
        dst.fill(bias);
        for (&off, &wv) in offsets.iter().zip(taps) {
            axpy(dst, wv, &phases[off + start..off + start + dst.len()]);
        }
    }
}

/// [`wide_generic`] for f32 with a tile in four AVX-512 registers across all taps (one store
/// per tile instead of one per tap), the rest in masked vectors, and fused multiply-adds
/// (rounded once, so the last bits differ from the baseline path's).
///
/// # Safety
/// AVX-512F must be available; `offsets[k] + wide.len() <= phases.len()` for every `k` and
/// `taps.len() >= offsets.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn wide_f32_avx512(phases: &[f32], offsets: &[usize], taps: &[f32], bias: f32, wide: &mut [f32]) {
    use std::arch::x86_64::*;
    let tiles = wide.len() / TILE * TILE;
    // SAFETY: the caller upholds the contract. Every load reads `off + start + i` with
    // `start + i < wide.len()` (masked lanes beyond it are neither read nor faulted on), and
    // every store writes inside `wide`.
    unsafe {
        let b = _mm512_set1_ps(bias);
        for start in (0..tiles).step_by(TILE) {
            let (mut a0, mut a1, mut a2, mut a3) = (b, b, b, b);
            for (k, &off) in offsets.iter().enumerate() {
                let w = _mm512_set1_ps(*taps.get_unchecked(k));
                let p = phases.as_ptr().add(off + start);
                a0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p), a0);
                a1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p.add(16)), a1);
                a2 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p.add(32)), a2);
                a3 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p.add(48)), a3);
            }
            let q = wide.as_mut_ptr().add(start);
            _mm512_storeu_ps(q, a0);
            _mm512_storeu_ps(q.add(16), a1);
            _mm512_storeu_ps(q.add(32), a2);
            _mm512_storeu_ps(q.add(48), a3);
        }
        for start in (tiles..wide.len()).step_by(16) {
            let mask: __mmask16 = if wide.len() - start >= 16 { 0xffff } else { (1u16 << (wide.len() - start)) - 1 };
            let mut a = b;
            for (k, &off) in offsets.iter().enumerate() {
                let w = _mm512_set1_ps(*taps.get_unchecked(k));
                a = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(mask, phases.as_ptr().add(off + start)), a);
            }
            _mm512_mask_storeu_ps(wide.as_mut_ptr().add(start), mask, a);
        }
    }
}

/// One plane of a call: the sizes, the phase layout, the plane's input and its channel's taps.
#[derive(Clone, Copy)]
struct PlaneInput<'a, T> {
    g: &'a ConvGeometry,
    layout: &'a PhaseLayout,
    input: &'a [T],
    taps: &'a [T],
}

impl<'a, T> PlaneInput<'a, T> {
    /// Plane `index` (image-major, then channel) of the input `x` and its taps in `weight`.
    fn of(g: &'a ConvGeometry, layout: &'a PhaseLayout, x: &'a [T], weight: &'a [T], index: usize) -> Self {
        let (hw, kk, c) = (g.h * g.w, g.kh * g.kw, index % g.c);
        Self { g, layout, input: &x[index * hw..(index + 1) * hw], taps: &weight[c * kk..(c + 1) * kk] }
    }
}

/// One plane's forward pass: split, every tap over the wide output block by block, then the
/// valid columns with the bias and the activation.
#[inline(always)]
fn forward_plane<T: Float>(
    plane: &PlaneInput<'_, T>,
    bias: T,
    act: FusedActivation,
    scratch: &mut Vec<T>,
    out: &mut [T],
) {
    let PlaneInput { g, layout, input, taps } = *plane;
    let (phases, wide) = scratch_for(scratch, layout.len + layout.wide).split_at_mut(layout.len);
    split(g, layout, input, phases);
    #[cfg(target_arch = "x86_64")]
    if let (Some(phases), Some(taps), Some(wide), true) =
        (as_f32(phases), as_f32(taps), as_f32_mut(wide), has_avx512f())
    {
        // The farthest tap's reads end inside the scratch (see `PhaseLayout::len`).
        assert!(layout.taps.iter().all(|&off| off + wide.len() <= phases.len()) && taps.len() == layout.taps.len());
        let bias = as_f32(std::slice::from_ref(&bias)).map_or(0.0, |b| b[0]);
        // SAFETY: AVX-512F is available, and every tap's reads `off..off + wide.len()` stay
        // within `phases` (asserted just above): the function's requirements.
        unsafe { wide_f32_avx512(phases, &layout.taps, taps, bias, wide) };
    } else {
        wide_generic(phases, &layout.taps, taps, bias, wide);
    }
    #[cfg(not(target_arch = "x86_64"))]
    wide_generic(phases, &layout.taps, taps, bias, wide);
    for (dst, src) in out.chunks_exact_mut(g.ow).zip(wide.chunks(layout.width)) {
        dst.copy_from_slice(&src[..g.ow]);
    }
    act.apply(out);
}

/// [`forward_plane`] compiled for AVX-512.
///
/// # Safety
/// AVX-512F must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn forward_plane_avx512<T: Float>(
    plane: &PlaneInput<'_, T>,
    bias: T,
    act: FusedActivation,
    scratch: &mut Vec<T>,
    out: &mut [T],
) {
    forward_plane(plane, bias, act, scratch, out)
}

/// One plane's backward pass: the activation's mask into the wide rows, then per tap the weight
/// gradient (a dot product with the split input) and, when wanted, the input gradient (an `axpy`
/// into the split gradient, merged back into `dx` at the end). `partial` receives the plane's
/// `kh·kw` weight-gradient terms and then its bias-gradient term.
#[inline(always)]
fn backward_plane<T: Float>(
    plane: &PlaneInput<'_, T>,
    (y, dy, act): (&[T], &[T], FusedActivation),
    scratch: &mut Vec<T>,
    partial: &mut [T],
    dx: Option<&mut [T]>,
) {
    let PlaneInput { g, layout, input, taps } = *plane;
    let kk = layout.taps.len();
    let (phases, rest) = scratch_for(scratch, 2 * layout.len + layout.wide).split_at_mut(layout.len);
    let (dz, dphases) = rest.split_at_mut(layout.wide);
    // The discarded columns of the wide rows get a zero gradient.
    dz.fill(T::ZERO);
    for ((rows, y), dy) in dz.chunks_exact_mut(layout.width).zip(y.chunks_exact(g.ow)).zip(dy.chunks_exact(g.ow)) {
        act.mask_gradient(y, dy, &mut rows[..g.ow]);
    }
    partial[kk] = sum(dz);
    split(g, layout, input, phases);
    for (p, &off) in partial.iter_mut().zip(&layout.taps) {
        *p = dot(dz, &phases[off..off + layout.wide]);
    }
    if let Some(dx) = dx {
        dphases.fill(T::ZERO);
        for block in (0..layout.wide).step_by(BLOCK) {
            let end = (block + BLOCK).min(layout.wide);
            for (&off, &wv) in layout.taps.iter().zip(taps) {
                axpy(&mut dphases[off + block..off + end], wv, &dz[block..end]);
            }
        }
        merge(g, layout, dphases, dx);
    }
}

/// [`backward_plane`] compiled for AVX-512.
///
/// # Safety
/// AVX-512F must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn backward_plane_avx512<T: Float>(
    plane: &PlaneInput<'_, T>,
    upstream: (&[T], &[T], FusedActivation),
    scratch: &mut Vec<T>,
    partial: &mut [T],
    dx: Option<&mut [T]>,
) {
    backward_plane(plane, upstream, scratch, partial, dx)
}

/// The forward pass over every plane, in parallel.
pub(crate) fn forward<T: Float>(x: &[T], conv: ConvSpec<'_, T>) -> Vec<T> {
    let ConvSpec { weight, bias, act, g } = conv;
    let ohw = g.ohw();
    let layout = PhaseLayout::new(g);
    let avx512 = has_avx512f();
    let mut y = crate::element::zeroed(g.b * g.c * ohw);
    y.par_chunks_mut(ohw).enumerate().for_each_init(Vec::new, |scratch, (plane, out)| {
        let c = plane % g.c;
        let bias = bias.map_or(T::ZERO, |b| b[c]);
        let plane = PlaneInput::of(g, &layout, x, weight, plane);
        #[cfg(target_arch = "x86_64")]
        if avx512 {
            // SAFETY: AVX-512F is available (checked at run time just above); the function has
            // no other requirement.
            unsafe { forward_plane_avx512(&plane, bias, act, scratch, out) };
            return;
        }
        let _ = avx512;
        forward_plane(&plane, bias, act, scratch, out);
    });
    y
}

/// The backward pass: per plane in parallel, then the weight and bias partials reduced over the
/// batch in a fixed order (the result does not depend on the thread count).
pub(crate) fn backward<T: Float>(
    x: &[T],
    weight: &[T],
    y: &[T],
    dy: &[T],
    act: FusedActivation,
    g: &ConvGeometry,
    needs: Needs,
) -> ConvGrads<T> {
    let (hw, ohw, kk) = (g.h * g.w, g.ohw(), g.kh * g.kw);
    let planes = g.b * g.c;
    let layout = PhaseLayout::new(g);
    let avx512 = has_avx512f();
    let plane_work = |plane: usize, scratch: &mut Vec<T>, partial: &mut [T], dx: Option<&mut [T]>| {
        let (y, dy) = (&y[plane * ohw..(plane + 1) * ohw], &dy[plane * ohw..(plane + 1) * ohw]);
        let plane = PlaneInput::of(g, &layout, x, weight, plane);
        #[cfg(target_arch = "x86_64")]
        if avx512 {
            // SAFETY: AVX-512F is available (checked at run time above); no other requirement.
            unsafe { backward_plane_avx512(&plane, (y, dy, act), scratch, partial, dx) };
            return;
        }
        let _ = avx512;
        backward_plane(&plane, (y, dy, act), scratch, partial, dx);
    };
    // Per plane: kk weight-gradient partials, then the bias-gradient partial.
    let mut partials = vec![T::ZERO; planes * (kk + 1)];
    let dx = if needs.x {
        let mut dx = vec![T::ZERO; planes * hw];
        dx.par_chunks_mut(hw)
            .zip(partials.par_chunks_mut(kk + 1))
            .enumerate()
            .for_each_init(Vec::new, |scratch, (plane, (dx, partial))| plane_work(plane, scratch, partial, Some(dx)));
        Some(dx)
    } else {
        partials
            .par_chunks_mut(kk + 1)
            .enumerate()
            .for_each_init(Vec::new, |scratch, (plane, partial)| plane_work(plane, scratch, partial, None));
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
