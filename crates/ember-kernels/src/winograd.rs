//! 3x3 stride-1 convolutions by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, "Fast
//! algorithms for convolutional neural networks", CVPR 2016): each 2x2 block of outputs comes
//! from a 4x4 input tile through 16 products instead of 36, so the GEMMs do 2.25x fewer
//! multiply-adds.
//!
//! The kernel `g` becomes `U = G g Gᵀ` (4x4 per output/input channel pair, once per call, in
//! parallel over output channels), every input tile `d` becomes `V = Bᵀ d B`, and for each of the
//! 16 positions ξ of the 4x4 transform one GEMM `M_ξ = U_ξ · V_ξ` (`c_out x c_in` times
//! `c_in x tiles`) sums over the input channels; `Y = Aᵀ M A` gives the 2x2 outputs.
//!
//! The tiles go through in blocks of whole bands (a band: one row of tiles of one image; a
//! block may span images), sized so that a block's `V` and `M` stay in the core's L2 cache
//! between the input transform, the GEMMs and the output transform: transforming a whole batch
//! first and multiplying after spilled both to memory and ran slower than the direct kernel.
//! Used for the forward pass of 3x3 stride-1 layers from [`MIN_CHANNELS`] channels, and through
//! it for their input gradient (a convolution too, see `conv2d_gemm`).

use rayon::prelude::*;

use crate::conv_geometry::ConvGeometry;
use crate::conv_spec::ConvSpec;
use crate::element::{has_avx512f, Float};
use crate::matmul::{matmul, Mat};

/// Input and output channels from which the transforms' cost is small against the GEMMs'
/// savings.
const MIN_CHANNELS: usize = 64;

/// Bytes of a block's `V` and `M` together: about one core's L2 cache.
const BLOCK_BYTES: usize = 1 << 20;

/// Fewest tiles per block: below this the GEMMs' packing costs more than the cache saves.
const MIN_BLOCK_TILES: usize = 64;

/// Whether F(2x2, 3x3) computes this convolution: 3x3, stride 1, no dilation, one group, the
/// same padding on every side, at least [`MIN_CHANNELS`] channels in and out.
pub(crate) fn applies(g: &ConvGeometry) -> bool {
    let p = g.p;
    g.kh == 3
        && g.kw == 3
        && p.stride == 1
        && p.dilation == 1
        && p.groups == 1
        && g.pad.symmetric().is_some()
        && g.c >= MIN_CHANNELS
        && g.o >= MIN_CHANNELS
}

/// Channels in and out from which F(2x2, 3x3) runs faster than the direct kernel (which takes
/// up to 128 input channels). Measured on ResNet-18 at 224 px (`layer_profile`, fastest of 9
/// passes, alternated): at 128 channels (28x28 planes) Winograd took 15–19 ms a layer against
/// the direct kernel's 19–20 ms; at 64 channels (56x56) 21–24 ms against 19–20 ms.
const BEATS_DIRECT_FROM: usize = 128;

/// Whether F(2x2, 3x3) should run even where the direct kernel applies.
pub(crate) fn beats_direct(g: &ConvGeometry) -> bool {
    g.c >= BEATS_DIRECT_FROM && g.o >= BEATS_DIRECT_FROM
}

/// `U = G g Gᵀ` for every `(o, c)`, laid out as `[o][ξ][c]`: `U_ξ` is the `o x c` matrix at
/// offset `ξ * c` with row stride `16 * c` ([`u_matrix`]). In parallel over output channels,
/// each a vectorised loop over input channels; the buffer is never zeroed first (512 x 512
/// channels make 16 MiB, and zeroing it cost more than the transform).
pub(crate) fn transform_weights<T: Float>(weight: &[T], g: &ConvGeometry) -> Vec<T> {
    let (o, c) = (g.o, g.c);
    assert!(weight.len() == o * c * 9, "winograd: weight size");
    let mut u: Vec<T> = Vec::with_capacity(16 * o * c);
    u.spare_capacity_mut()[..16 * o * c].par_chunks_mut(16 * c).enumerate().for_each(|(out, u_o)| {
        let k = &weight[out * c * 9..(out + 1) * c * 9];
        #[cfg(target_arch = "x86_64")]
        if has_avx512f() {
            // SAFETY: AVX-512F is available, the copy's only requirement.
            unsafe { transform_kernels_avx512(k, u_o) };
        } else {
            transform_kernels(k, u_o);
        }
        #[cfg(not(target_arch = "x86_64"))]
        transform_kernels(k, u_o);
    });
    // SAFETY: the capacity is 16 * o * c, and every element below it was written:
    // `transform_kernels` writes all 16 * c elements of its output channel's chunk.
    unsafe { u.set_len(16 * o * c) };
    u
}

/// `U = G g Gᵀ` of one output channel's kernels (`c x 3 x 3`) into `u` (`16 x c`, every element
/// written), a step of input channels at a time on local arrays.
#[inline(always)]
fn transform_kernels<T: Float>(k: &[T], u: &mut [std::mem::MaybeUninit<T>]) {
    let c = k.len() / 9;
    assert!(u.len() == 16 * c, "winograd: transformed kernel size");
    let half = T::from_f64(0.5);
    for first in (0..c).step_by(STEP) {
        let len = STEP.min(c - first);
        let mut taps = [[T::ZERO; STEP]; 9];
        for (i, kernel) in k[first * 9..(first + len) * 9].chunks_exact(9).enumerate() {
            for (t, v) in kernel.iter().enumerate() {
                taps[t][i] = *v;
            }
        }
        let mut out = [[T::ZERO; STEP]; 16];
        for i in 0..STEP {
            // t = G g: 4 rows of 3 (kernel row r, column j is taps[r * 3 + j]).
            let mut t = [[T::ZERO; 3]; 4];
            for j in 0..3 {
                let (g0, g1, g2) = (taps[j][i], taps[3 + j][i], taps[6 + j][i]);
                t[0][j] = g0;
                t[1][j] = (g0 + g1 + g2) * half;
                t[2][j] = (g0 - g1 + g2) * half;
                t[3][j] = g2;
            }
            // (G g) Gᵀ.
            for (r, row) in t.iter().enumerate() {
                let cols = [row[0], (row[0] + row[1] + row[2]) * half, (row[0] - row[1] + row[2]) * half, row[2]];
                for (j, v) in cols.into_iter().enumerate() {
                    out[r * 4 + j][i] = v;
                }
            }
        }
        for (xi, values) in out.iter().enumerate() {
            for (slot, v) in u[xi * c + first..xi * c + first + len].iter_mut().zip(values) {
                slot.write(*v);
            }
        }
    }
}

/// [`transform_kernels`] compiled for AVX-512.
///
/// # Safety
/// AVX-512F must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transform_kernels_avx512<T: Float>(k: &[T], u: &mut [std::mem::MaybeUninit<T>]) {
    transform_kernels(k, u)
}

/// `U_ξ` of [`transform_weights`]'s output.
fn u_matrix<T>(u: &[T], xi: usize, c: usize) -> Mat<'_, T> {
    Mat { data: &u[xi * c..], row_stride: 16 * c, col_stride: 1 }
}

/// Whether the weight gradient should run by Winograd ([`weight_gradient`]): from 256 input
/// channels (wider than the direct kernel takes) on planes of at least 100 positions. Measured
/// against the previous paths (`conv_probe`-style single convolutions, 8 images, one thread,
/// alternated): 256 channels at 14x14 took 56–61 ms a training step against 74–76 ms; 512 at
/// 7x7 92–100 ms against 77–82 ms (its 16 MiB dU, summed per block, outweighs the savings);
/// at 64 and 128 channels the direct kernel's weight gradient stayed faster.
pub(crate) fn weight_gradient_applies(g: &ConvGeometry) -> bool {
    applies(g) && g.c >= 256 && g.ohw() >= 100
}

/// Fewest tiles per block of the weight gradient (see [`accumulate_weight_gradient`]).
const WEIGHT_GRADIENT_TILES: usize = 512;

/// Tiles per block: as many as keep `V` and `M` in L2, at least [`MIN_BLOCK_TILES`], and a
/// multiple of 16 so that the GEMMs' columns fill whole vector registers (a 70-tile block ran
/// its last 6 columns on a 16-wide edge kernel, a tenth of a layer's time).
fn block_tiles<T>(g: &ConvGeometry) -> usize {
    let fitting = BLOCK_BYTES / (16 * std::mem::size_of::<T>() * (g.c + g.o));
    fitting.max(MIN_BLOCK_TILES).next_multiple_of(16)
}

/// `act(conv(x, w) + bias)` for the `n` images of `x` (a chunk, contiguous) into `y`, with the
/// transformed weights `u` ([`transform_weights`]).
pub(crate) fn forward<T: Float>(x: &[T], conv: ConvSpec<'_, T>, u: &[T], y: &mut [T], gemm_threads: usize) {
    let g = conv.g;
    let (c, o) = (g.c, g.o);
    let n = y.len() / g.out_image();
    let (th, tw) = (g.oh.div_ceil(2), g.ow.div_ceil(2));
    let total = n * th * tw;
    let most = block_tiles::<T>(g).min(total);
    let mut v = vec![T::ZERO; 16 * c * most];
    let mut m = vec![T::ZERO; 16 * o * most];
    for first in (0..total).step_by(most.max(1)) {
        let tiles = first..(first + most).min(total);
        let cols = tiles.len();
        // The transforms are plain loops over the block's tiles: compiled for AVX-512 where the CPU
        // has it (an explicit copy; `with_avx512`'s closure would stay out of line).
        #[cfg(target_arch = "x86_64")]
        if has_avx512f() {
            // SAFETY: AVX-512F is available, the copy's only requirement.
            unsafe { transform_input_avx512(x, g, tiles.clone(), &mut v) };
        } else {
            transform_input(x, g, tiles.clone(), &mut v);
        }
        #[cfg(not(target_arch = "x86_64"))]
        transform_input(x, g, tiles.clone(), &mut v);
        // M_ξ = U_ξ · V_ξ: o x cols each.
        for xi in 0..16 {
            matmul(
                &mut m[xi * o * cols..(xi + 1) * o * cols],
                (o, cols, c),
                u_matrix(u, xi, c),
                Mat::rows(&v[xi * c * cols..(xi + 1) * c * cols], cols),
                false,
                gemm_threads,
            );
        }
        #[cfg(target_arch = "x86_64")]
        if has_avx512f() {
            // SAFETY: as above.
            unsafe { transform_output_avx512(&m, conv, tiles.clone(), y) };
        } else {
            transform_output(&m, conv, tiles.clone(), y);
        }
        #[cfg(not(target_arch = "x86_64"))]
        transform_output(&m, conv, tiles, y);
    }
}

/// The weight gradient `dW = Σ Gᵀ dU G` of the images of `x` (`b` of them) for the output
/// gradient `dz`, by the same transform run backwards: `M = U ⊙ V` summed over input channels
/// makes `dU_ξ = Δ_ξ · V_ξᵀ`, a GEMM over the tiles, where `Δ = A δ Aᵀ` is each 2x2 tile `δ` of
/// the output gradient; 2.25x fewer multiply-adds than the im2col GEMM, as forward. The images go
/// in `per_chunk` chunks, one per rayon thread, each with its own `dU`, summed at the end.
pub(crate) fn weight_gradient<T: Float>(
    x: &[T],
    dz: &[T],
    g: &ConvGeometry,
    per_chunk: usize,
    gemm_threads: usize,
) -> Vec<T> {
    let (c, o) = (g.c, g.o);
    let chunks = g.b.div_ceil(per_chunk.max(1));
    let partials: Vec<Vec<T>> = (0..chunks)
        .into_par_iter()
        .map(|chunk| {
            let images = chunk * per_chunk..((chunk + 1) * per_chunk).min(g.b);
            let x = &x[images.start * g.in_image()..images.end * g.in_image()];
            let dz = &dz[images.start * g.out_image()..images.end * g.out_image()];
            let mut du = vec![T::ZERO; 16 * o * c];
            accumulate_weight_gradient(x, dz, g, &mut du, gemm_threads);
            du
        })
        .collect();
    let mut du = vec![T::ZERO; 16 * o * c];
    for partial in partials {
        du.iter_mut().zip(partial).for_each(|(a, v)| *a += v);
    }
    // dW = Gᵀ dU G for every (o, c); dU_ξ is `du[ξ * o * c..]`. A step of (o, c) pairs at a time
    // on local arrays: each ξ's values are contiguous there (one at a time, the 16 reads per pair
    // lay 16 * o * c * 4 bytes apart and missed the TLB).
    let half = T::from_f64(0.5);
    let pairs = o * c;
    let mut dw = vec![T::ZERO; pairs * 9];
    for first in (0..pairs).step_by(STEP) {
        let len = STEP.min(pairs - first);
        let mut d = [[T::ZERO; STEP]; 16];
        for (xi, local) in d.iter_mut().enumerate() {
            copy_step(&mut local[..len], &du[xi * pairs + first..xi * pairs + first + len]);
        }
        let mut out = [[T::ZERO; STEP]; 9];
        for i in 0..STEP {
            // s = Gᵀ dU: 3 rows of 4.
            let mut s = [[T::ZERO; 4]; 3];
            for j in 0..4 {
                let (d0, d1, d2, d3) = (d[j][i], d[4 + j][i], d[8 + j][i], d[12 + j][i]);
                s[0][j] = d0 + (d1 + d2) * half;
                s[1][j] = (d1 - d2) * half;
                s[2][j] = (d1 + d2) * half + d3;
            }
            // (Gᵀ dU) G.
            for (a, row) in s.iter().enumerate() {
                out[a * 3][i] = row[0] + (row[1] + row[2]) * half;
                out[a * 3 + 1][i] = (row[1] - row[2]) * half;
                out[a * 3 + 2][i] = (row[1] + row[2]) * half + row[3];
            }
        }
        for (i, kernel) in dw[first * 9..(first + len) * 9].chunks_exact_mut(9).enumerate() {
            for (t, v) in kernel.iter_mut().enumerate() {
                *v = out[t][i];
            }
        }
    }
    dw
}

/// `dU_ξ += Δ_ξ · V_ξᵀ` over one chunk's images (`x`, `dz` contiguous), in the forward pass's
/// blocks of tiles; `du` is laid out `[ξ][o][c]`.
fn accumulate_weight_gradient<T: Float>(x: &[T], dz: &[T], g: &ConvGeometry, du: &mut [T], gemm_threads: usize) {
    let (c, o) = (g.c, g.o);
    let n = dz.len() / g.out_image();
    let (th, tw) = (g.oh.div_ceil(2), g.ow.div_ceil(2));
    let total = n * th * tw;
    // Each block's GEMMs read and write all of dU (16 MiB at 512 channels): at least
    // WEIGHT_GRADIENT_TILES deep, or that traffic dominates.
    let most = block_tiles::<T>(g).max(WEIGHT_GRADIENT_TILES).min(total);
    let mut v = vec![T::ZERO; 16 * c * most];
    let mut delta = vec![T::ZERO; 16 * o * most];
    for first in (0..total).step_by(most.max(1)) {
        let tiles = first..(first + most).min(total);
        let cols = tiles.len();
        #[cfg(target_arch = "x86_64")]
        if has_avx512f() {
            // SAFETY: AVX-512F is available, the copies' only requirement.
            unsafe {
                transform_input_avx512(x, g, tiles.clone(), &mut v);
                transform_gradient_avx512(dz, g, tiles.clone(), &mut delta);
            }
        } else {
            transform_input(x, g, tiles.clone(), &mut v);
            transform_gradient(dz, g, tiles.clone(), &mut delta);
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            transform_input(x, g, tiles.clone(), &mut v);
            transform_gradient(dz, g, tiles.clone(), &mut delta);
        }
        for xi in 0..16 {
            matmul(
                &mut du[xi * o * c..(xi + 1) * o * c],
                (o, c, cols),
                Mat::rows(&delta[xi * o * cols..(xi + 1) * o * cols], cols),
                Mat::transposed(&v[xi * c * cols..(xi + 1) * c * cols], cols),
                true,
                gemm_threads,
            );
        }
    }
}

/// `Δ_ξ` (`o x cols` each) of the chunk's `tiles` of the output gradient `dz`: per output
/// channel, each tile's 2x2 gradient `δ` (zero past the plane's edge) gathered into 4 rows of the
/// block's tiles, then `Δ = A δ Aᵀ` over all of them.
#[inline(always)]
fn transform_gradient<T: Float>(dz: &[T], g: &ConvGeometry, tiles: std::ops::Range<usize>, delta: &mut [T]) {
    let o = g.o;
    let (th, tw) = (g.oh.div_ceil(2), g.ow.div_ceil(2));
    let cols = tiles.len();
    let mut gathered = vec![T::ZERO; 4 * cols];
    let (mut even, mut odd) = (vec![T::ZERO; tw], vec![T::ZERO; tw]);
    for oc in 0..o {
        for Segment { at, img, ty, tx, len } in segments(tiles.clone(), th, tw) {
            let plane = &dz[img * g.out_image() + oc * g.ohw()..img * g.out_image() + (oc + 1) * g.ohw()];
            for r in 0..2 {
                let oy = 2 * ty + r;
                even.fill(T::ZERO);
                odd.fill(T::ZERO);
                if oy < g.oh {
                    let row = &plane[oy * g.ow..(oy + 1) * g.ow];
                    let whole = g.ow / 2;
                    deinterleave(&row[..2 * whole], &mut even[..whole], &mut odd[..whole]);
                    if g.ow % 2 == 1 {
                        even[whole] = row[2 * whole];
                    }
                }
                for (j, half) in [&even, &odd].into_iter().enumerate() {
                    let to = &mut gathered[(r * 2 + j) * cols + at..(r * 2 + j) * cols + at + len];
                    for (t, f) in to.iter_mut().zip(&half[tx..tx + len]) {
                        *t = *f;
                    }
                }
            }
        }
        let d: [&[T]; 4] = std::array::from_fn(|i| &gathered[i * cols..(i + 1) * cols]);
        // Row ξ * o + oc of Δ, for each ξ.
        let mut out: [&mut [T]; 16] = Default::default();
        for (slot, row) in out.iter_mut().zip(delta.chunks_exact_mut(cols).skip(oc).step_by(o)) {
            *slot = row;
        }
        per_tile(&d, out, cols, gradient_tile);
    }
}

/// [`transform_gradient`] compiled for AVX-512.
///
/// # Safety
/// AVX-512F must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transform_gradient_avx512<T: Float>(
    dz: &[T],
    g: &ConvGeometry,
    tiles: std::ops::Range<usize>,
    delta: &mut [T],
) {
    transform_gradient(dz, g, tiles, delta)
}

/// A run of one band's tiles inside a block of tiles: tiles `tx..tx + len` of tile row `ty` of
/// image `img` (of the chunk), at column `at` of the block.
#[derive(Clone, Copy)]
struct Segment {
    at: usize,
    img: usize,
    ty: usize,
    tx: usize,
    len: usize,
}

/// The segments of the chunk's tiles `tiles` (tile `t` is tile `t % tw` of band `t / tw`, band
/// `b` is tile row `b % th` of image `b / th`).
fn segments(tiles: std::ops::Range<usize>, th: usize, tw: usize) -> impl Iterator<Item = Segment> {
    let first = tiles.start;
    let mut t = tiles.start;
    std::iter::from_fn(move || {
        (t < tiles.end).then(|| {
            let (band, tx) = (t / tw, t % tw);
            let len = (tw - tx).min(tiles.end - t);
            let segment = Segment { at: t - first, img: band / th, ty: band % th, tx, len };
            t += len;
            segment
        })
    })
}

/// `V_ξ` (`c x cols` each, `cols` = the block's tiles) of the chunk's `tiles` of `x`. Per
/// channel: for each band the block touches, its 4 input rows zero-padded and split into even
/// and odd columns (column `l` of tile `tx` is then element `tx + l / 2` of one of them, a
/// contiguous run), gathered as 16 rows of the block's tiles; then `Bᵀ d B` over all of them
/// (narrow planes, ResNet's 14x14 and 7x7 with 7 and 4 tiles a band, fill whole vector steps).
#[inline(always)]
fn transform_input<T: Float>(x: &[T], g: &ConvGeometry, tiles: std::ops::Range<usize>, v: &mut [T]) {
    let (c, h, w) = (g.c, g.h, g.w);
    let (th, tw) = (g.oh.div_ceil(2), g.ow.div_ceil(2));
    let cols = tiles.len();
    // The padded row's element j is the input's j - left; elements up to 2 * tw + 1 are read.
    let left = g.pad.left;
    let mut split = vec![T::ZERO; 8 * (tw + 1)];
    let mut gathered = vec![T::ZERO; 16 * cols];
    for ch in 0..c {
        for Segment { at, img, ty, tx, len } in segments(tiles.clone(), th, tw) {
            let plane = &x[(img * c + ch) * h * w..(img * c + ch + 1) * h * w];
            for (k, row) in split.chunks_exact_mut(2 * (tw + 1)).enumerate() {
                let (even, odd) = row.split_at_mut(tw + 1);
                even.fill(T::ZERO);
                odd.fill(T::ZERO);
                let Some(iy) = (2 * ty + k).checked_sub(g.pad.top).filter(|&iy| iy < h) else { continue };
                // Input column i lands at padded position i + left: even or odd by its parity.
                let src = &plane[iy * w..iy * w + w.min(2 * tw + 2 - left)];
                let (first_even, first_odd) =
                    if left.is_multiple_of(2) { (&mut *even, &mut *odd) } else { (&mut *odd, &mut *even) };
                let (e0, o0) = (left / 2, left.div_ceil(2));
                let count = src.len() / 2;
                deinterleave(&src[..2 * count], &mut first_even[e0..e0 + count], &mut first_odd[o0..o0 + count]);
                if src.len() % 2 == 1 {
                    first_even[e0 + count] = src[2 * count];
                }
            }
            for (i, gathered) in gathered.chunks_exact_mut(cols).enumerate() {
                let (k, l) = (i / 4, i % 4);
                let row = &split[k * 2 * (tw + 1)..(k + 1) * 2 * (tw + 1)];
                let half = if l % 2 == 0 { &row[..tw + 1] } else { &row[tw + 1..] };
                let src = &half[l / 2 + tx..l / 2 + tx + len];
                for (to, from) in gathered[at..at + len].iter_mut().zip(src) {
                    *to = *from;
                }
            }
        }
        let d: [&[T]; 16] = std::array::from_fn(|i| &gathered[i * cols..(i + 1) * cols]);
        // Row ξ * c + ch of V, for each ξ.
        let mut out: [&mut [T]; 16] = Default::default();
        for (o, row) in out.iter_mut().zip(v.chunks_exact_mut(cols).skip(ch).step_by(c)) {
            *o = row;
        }
        per_tile(&d, out, cols, input_tile);
    }
}

/// Elements per step of [`interleave`] and [`deinterleave`]: fixed-size local arrays, which
/// LLVM turns into shuffles (element by element, the loops stayed scalar).
const PAIRS: usize = 8;

/// `src[2i] -> even[i]`, `src[2i + 1] -> odd[i]`; `src.len() == 2 * even.len() == 2 * odd.len()`.
#[inline(always)]
fn deinterleave<T: Float>(src: &[T], even: &mut [T], odd: &mut [T]) {
    let mut pieces = src.chunks_exact(2 * PAIRS);
    let (mut evens, mut odds) = (even.chunks_exact_mut(PAIRS), odd.chunks_exact_mut(PAIRS));
    for ((piece, e), o) in (&mut pieces).zip(&mut evens).zip(&mut odds) {
        let (mut el, mut ol) = ([T::ZERO; PAIRS], [T::ZERO; PAIRS]);
        for i in 0..PAIRS {
            el[i] = piece[2 * i];
            ol[i] = piece[2 * i + 1];
        }
        e.copy_from_slice(&el);
        o.copy_from_slice(&ol);
    }
    let rest = pieces.remainder();
    for ((pair, e), o) in rest.chunks_exact(2).zip(evens.into_remainder()).zip(odds.into_remainder()) {
        *e = pair[0];
        *o = pair[1];
    }
}

/// `even[i] -> dst[2i]`, `odd[i] -> dst[2i + 1]`; `dst.len() == 2 * even.len() == 2 * odd.len()`.
#[inline(always)]
fn interleave<T: Float>(dst: &mut [T], even: &[T], odd: &[T]) {
    let mut pieces = dst.chunks_exact_mut(2 * PAIRS);
    let (mut evens, mut odds) = (even.chunks_exact(PAIRS), odd.chunks_exact(PAIRS));
    for ((piece, e), o) in (&mut pieces).zip(&mut evens).zip(&mut odds) {
        let mut local = [T::ZERO; 2 * PAIRS];
        for i in 0..PAIRS {
            local[2 * i] = e[i];
            local[2 * i + 1] = o[i];
        }
        piece.copy_from_slice(&local);
    }
    let rest = pieces.into_remainder();
    for ((pair, e), o) in rest.chunks_exact_mut(2).zip(evens.remainder()).zip(odds.remainder()) {
        pair[0] = *e;
        pair[1] = *o;
    }
}

/// Tiles per step of [`per_tile`].
const STEP: usize = 16;

/// `dst = src` for at most [`STEP`] elements: a whole step as a copy of known length (inlined;
/// `copy_from_slice` of a run-time length calls `memmove`, which cost 10 % of the transforms).
#[inline(always)]
fn copy_step<T: Copy>(dst: &mut [T], src: &[T]) {
    match (<&mut [T; STEP]>::try_from(&mut *dst), <&[T; STEP]>::try_from(src)) {
        (Ok(d), Ok(s)) => *d = *s,
        _ => dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s),
    }
}

/// `out[o][t] = f(inp[0][t], .., inp[I - 1][t])[o]` for every tile `t` (`cols` of them): the one
/// loop of the three transforms, a [`STEP`] of tiles at a time on local arrays, which LLVM knows
/// alias nothing, so `f` inlined there vectorises over the step (on the slices themselves it
/// would need run-time alias checks and stays scalar).
#[inline(always)]
fn per_tile<T: Float, const I: usize, const O: usize>(
    inp: &[&[T]; I],
    mut out: [&mut [T]; O],
    cols: usize,
    f: impl Fn([T; I]) -> [T; O],
) {
    assert!(inp.iter().all(|r| r.len() == cols) && out.iter().all(|r| r.len() == cols));
    let mut t = 0;
    while t < cols {
        let len = STEP.min(cols - t);
        let mut local_in = [[T::ZERO; STEP]; I];
        for (local, row) in local_in.iter_mut().zip(inp) {
            copy_step(&mut local[..len], &row[t..t + len]);
        }
        let mut local_out = [[T::ZERO; STEP]; O];
        for i in 0..STEP {
            let values = f(std::array::from_fn(|k| local_in[k][i]));
            for (row, v) in local_out.iter_mut().zip(values) {
                row[i] = v;
            }
        }
        for (row, local) in out.iter_mut().zip(&local_out) {
            copy_step(&mut row[t..t + len], &local[..len]);
        }
        t += len;
    }
}

/// `V = Bᵀ d B` of one tile: `d[k * 4 + l]` is row `k`, column `l` of its 4x4 input, the result
/// indexed by ξ.
#[inline(always)]
fn input_tile<T: Float>(d: [T; 16]) -> [T; 16] {
    // d B for each row k.
    let hb = |k: usize| {
        let (a, b, c, e) = (d[k * 4], d[k * 4 + 1], d[k * 4 + 2], d[k * 4 + 3]);
        [a - c, b + c, c - b, b - e]
    };
    let (r0, r1, r2, r3) = (hb(0), hb(1), hb(2), hb(3));
    // Bᵀ across the rows.
    let mut v = [T::ZERO; 16];
    for j in 0..4 {
        v[j] = r0[j] - r2[j];
        v[4 + j] = r1[j] + r2[j];
        v[8 + j] = r2[j] - r1[j];
        v[12 + j] = r1[j] - r3[j];
    }
    v
}

/// `Y = Aᵀ m A + bias` of one tile: `m[ξ]` its products, the result `y[r * 2 + j]` at row `r`,
/// column `j`.
#[inline(always)]
fn output_tile<T: Float>(m: [T; 16], bias: T) -> [T; 4] {
    // s = Aᵀ m: two rows of 4.
    let s0 = |j: usize| m[j] + m[4 + j] + m[8 + j];
    let s1 = |j: usize| m[4 + j] - m[8 + j] - m[12 + j];
    let (a0, a1, a2, a3) = (s0(0), s0(1), s0(2), s0(3));
    let (b0, b1, b2, b3) = (s1(0), s1(1), s1(2), s1(3));
    [a0 + a1 + a2 + bias, a1 - a2 - a3 + bias, b0 + b1 + b2 + bias, b1 - b2 - b3 + bias]
}

/// `Δ = A δ Aᵀ` of one tile: `d[r * 2 + s]` is row `r`, column `s` of its 2x2 output gradient,
/// the result indexed by ξ (`A` is `Aᵀ`'s transpose, rows `[1, 0]`, `[1, 1]`, `[1, -1]`,
/// `[0, -1]`).
#[inline(always)]
fn gradient_tile<T: Float>(d: [T; 4]) -> [T; 16] {
    let [d00, d01, d10, d11] = d;
    // A δ: 4 rows of 2.
    let rows = [[d00, d01], [d00 + d10, d01 + d11], [d00 - d10, d01 - d11], [T::ZERO - d10, T::ZERO - d11]];
    // (A δ) Aᵀ.
    let mut out = [T::ZERO; 16];
    for (r, [a, b]) in rows.into_iter().enumerate() {
        out[r * 4] = a;
        out[r * 4 + 1] = a + b;
        out[r * 4 + 2] = a - b;
        out[r * 4 + 3] = T::ZERO - b;
    }
    out
}

/// [`transform_input`] compiled for AVX-512.
///
/// # Safety
/// AVX-512F must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transform_input_avx512<T: Float>(x: &[T], g: &ConvGeometry, tiles: std::ops::Range<usize>, v: &mut [T]) {
    transform_input(x, g, tiles, v)
}

/// `Y = Aᵀ M A` of the chunk's `tiles`, plus the bias and through the activation, into the
/// output rows they cover in `y`. Per output channel: the 2x2 outputs of all the block's tiles
/// as one loop over them (16 rows in, 4 out), then scattered into the rows.
#[inline(always)]
fn transform_output<T: Float>(m: &[T], conv: ConvSpec<'_, T>, tiles: std::ops::Range<usize>, y: &mut [T]) {
    let ConvSpec { bias, act, g, .. } = conv;
    let o = g.o;
    let (th, tw) = (g.oh.div_ceil(2), g.ow.div_ceil(2));
    let cols = tiles.len();
    let mut quads = vec![T::ZERO; 4 * cols];
    for oc in 0..o {
        let b = bias.map_or(T::ZERO, |b| b[oc]);
        let e: [&[T]; 16] = std::array::from_fn(|xi| &m[(xi * o + oc) * cols..(xi * o + oc + 1) * cols]);
        {
            let (q0, rest) = quads.split_at_mut(cols);
            let (q1, rest) = rest.split_at_mut(cols);
            let (q2, q3) = rest.split_at_mut(cols);
            per_tile(&e, [q0, q1, q2, q3], cols, |m| output_tile(m, b));
        }
        for Segment { at, img, ty, tx, len } in segments(tiles.clone(), th, tw) {
            let out = &mut y[img * g.out_image() + oc * g.ohw()..img * g.out_image() + (oc + 1) * g.ohw()];
            for r in 0..2 {
                let oy = 2 * ty + r;
                if oy >= g.oh {
                    continue;
                }
                let (even, odd) = (&quads[(2 * r) * cols..], &quads[(2 * r + 1) * cols..]);
                let (even, odd) = (&even[at..at + len], &odd[at..at + len]);
                // Output columns 2 * tx .. (the last tile's second column may lie past the edge).
                let dst = &mut out[oy * g.ow + 2 * tx..(oy * g.ow + 2 * (tx + len)).min((oy + 1) * g.ow)];
                let whole = dst.len() / 2;
                interleave(&mut dst[..2 * whole], &even[..whole], &odd[..whole]);
                if dst.len() % 2 == 1 {
                    dst[2 * whole] = even[len - 1];
                }
                act.apply(dst);
            }
        }
    }
}

/// [`transform_output`] compiled for AVX-512.
///
/// # Safety
/// AVX-512F must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transform_output_avx512<T: Float>(
    m: &[T],
    conv: ConvSpec<'_, T>,
    bands: std::ops::Range<usize>,
    y: &mut [T],
) {
    transform_output(m, conv, bands, y)
}
