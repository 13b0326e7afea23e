//! 3x3 stride-1 convolutions by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, "Fast
//! algorithms for convolutional neural networks", CVPR 2016): each 2x2 block of outputs comes
//! from a 4x4 input tile through 16 products instead of 36, so the GEMMs do 2.25x fewer
//! multiply-adds.
//!
//! The kernel `g` becomes `U = G g Gᵀ` (4x4 per output/input channel pair, once per call), every
//! input tile `d` becomes `V = Bᵀ d B`, and for each of the 16 positions ξ of the 4x4 transform
//! one GEMM `M_ξ = U_ξ · V_ξ` (`c_out x c_in` times `c_in x tiles`, the tiles of all the chunk's
//! images side by side) sums over the input channels; `Y = Aᵀ M A` gives the 2x2 outputs.
//! Used for the forward pass of wide layers that the direct kernel does not take (ResNet's
//! 256- and 512-channel stages); the backward pass is the im2col one, which needs only the
//! forward's output.

use crate::conv_geometry::ConvGeometry;
use crate::conv_spec::ConvSpec;
use crate::element::Float;
use crate::matmul::{matmul, Mat};

/// Input channels from which the transforms' cost is small against the GEMMs' savings.
const MIN_CHANNELS: usize = 64;

/// Whether F(2x2, 3x3) computes this convolution: 3x3, stride 1, no dilation, one group, at
/// least [`MIN_CHANNELS`] channels in and out.
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

/// `U = G g Gᵀ` for every `(o, c)`, laid out as 16 matrices `U_ξ` of `o x c`.
pub(crate) fn transform_weights<T: Float>(weight: &[T], g: &ConvGeometry) -> Vec<T> {
    let (o, c) = (g.o, g.c);
    let half = T::from_f64(0.5);
    let mut u = vec![T::ZERO; 16 * o * c];
    for oc in 0..o * c {
        let k = &weight[oc * 9..oc * 9 + 9];
        // t = G g: 4 rows of 3.
        let mut t = [[T::ZERO; 3]; 4];
        for j in 0..3 {
            let (g0, g1, g2) = (k[j], k[3 + j], k[6 + j]);
            t[0][j] = g0;
            t[1][j] = (g0 + g1 + g2) * half;
            t[2][j] = (g0 - g1 + g2) * half;
            t[3][j] = g2;
        }
        for (r, row) in t.iter().enumerate() {
            let cols = [row[0], (row[0] + row[1] + row[2]) * half, (row[0] - row[1] + row[2]) * half, row[2]];
            for (j, v) in cols.into_iter().enumerate() {
                u[(r * 4 + j) * o * c + oc] = v;
            }
        }
    }
    u
}

/// `act(conv(x, w) + bias)` for the `n` images of `x` (a chunk, contiguous) into `y`, with the
/// transformed weights `u` ([`transform_weights`]).
#[inline(always)]
pub(crate) fn forward<T: Float>(x: &[T], conv: ConvSpec<'_, T>, u: &[T], y: &mut [T], gemm_threads: usize) {
    let ConvSpec { bias, act, g, .. } = conv;
    let (c, o, h, w) = (g.c, g.o, g.h, g.w);
    let n = y.len() / g.out_image();
    let (th, tw) = (g.oh.div_ceil(2), g.ow.div_ceil(2));
    let tiles = th * tw;
    let cols = n * tiles;
    // V_ξ: c x cols each. Per plane: a zero-padded copy, then per band of tile rows the
    // transform's column half on the band's 4 rows and its row half across them, each a loop
    // over the band's tiles (contiguous, so it vectorises).
    let mut v = vec![T::ZERO; 16 * c * cols];
    let (ph, pw) = (2 * th + 2, 2 * tw + 2);
    let mut padded = vec![T::ZERO; ph * pw];
    let mut half = vec![T::ZERO; 16 * tw];
    for img in 0..n {
        for ch in 0..c {
            let plane = &x[(img * c + ch) * h * w..(img * c + ch + 1) * h * w];
            padded.fill(T::ZERO);
            for (yy, src) in plane.chunks_exact(w).enumerate() {
                let row = yy + g.pad.top;
                if row >= ph {
                    break;
                }
                let (from, len) = (row * pw + g.pad.left, w.min(pw - g.pad.left));
                padded[from..from + len].copy_from_slice(&src[..len]);
            }
            for ty in 0..th {
                // d B for each of the band's rows k: half[(k * 4 + j) * tw + tx].
                for k in 0..4 {
                    let row = &padded[(2 * ty + k) * pw..(2 * ty + k + 1) * pw];
                    let (h0, rest) = half[k * 4 * tw..(k + 1) * 4 * tw].split_at_mut(tw);
                    let (h1, rest) = rest.split_at_mut(tw);
                    let (h2, h3) = rest.split_at_mut(tw);
                    for tx in 0..tw {
                        let (a, b, cc, d) = (row[2 * tx], row[2 * tx + 1], row[2 * tx + 2], row[2 * tx + 3]);
                        h0[tx] = a - cc;
                        h1[tx] = b + cc;
                        h2[tx] = cc - b;
                        h3[tx] = b - d;
                    }
                }
                // Bᵀ (d B) across the rows, written straight into V_ξ's row for this channel.
                let base = img * tiles + ty * tw;
                for j in 0..4 {
                    let r = |k: usize| &half[(k * 4 + j) * tw..(k * 4 + j + 1) * tw];
                    let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
                    let at = |xi: usize| ((xi * c + ch) * cols + base, (xi * c + ch) * cols + base + tw);
                    let (s, e) = at(j);
                    v[s..e].iter_mut().zip(r0.iter().zip(r2)).for_each(|(o, (a, b))| *o = *a - *b);
                    let (s, e) = at(4 + j);
                    v[s..e].iter_mut().zip(r1.iter().zip(r2)).for_each(|(o, (a, b))| *o = *a + *b);
                    let (s, e) = at(8 + j);
                    v[s..e].iter_mut().zip(r2.iter().zip(r1)).for_each(|(o, (a, b))| *o = *a - *b);
                    let (s, e) = at(12 + j);
                    v[s..e].iter_mut().zip(r1.iter().zip(r3)).for_each(|(o, (a, b))| *o = *a - *b);
                }
            }
        }
    }
    // M_ξ = U_ξ · V_ξ: o x cols each.
    let mut m = vec![T::ZERO; 16 * o * cols];
    for xi in 0..16 {
        matmul(
            &mut m[xi * o * cols..(xi + 1) * o * cols],
            (o, cols, c),
            Mat::rows(&u[xi * o * c..(xi + 1) * o * c], c),
            Mat::rows(&v[xi * c * cols..(xi + 1) * c * cols], cols),
            false,
            gemm_threads,
        );
    }
    // Y = Aᵀ M A, plus the bias, into each image's planes; then the activation. Per band of
    // tiles: the rows half across the 16 positions, then the columns half, over the band's
    // tiles at once.
    let mut rows = vec![T::ZERO; 8 * tw];
    for img in 0..n {
        let y_img = &mut y[img * g.out_image()..(img + 1) * g.out_image()];
        for oc in 0..o {
            let b = bias.map_or(T::ZERO, |b| b[oc]);
            let out = &mut y_img[oc * g.ohw()..(oc + 1) * g.ohw()];
            for ty in 0..th {
                let base = img * tiles + ty * tw;
                let e = |xi: usize| &m[(xi * o + oc) * cols + base..(xi * o + oc) * cols + base + tw];
                // s = Aᵀ m: rows[(r * 4 + j) * tw + tx].
                for j in 0..4 {
                    let (e0, e1, e2, e3) = (e(j), e(4 + j), e(8 + j), e(12 + j));
                    let (s0, s1) = rows.split_at_mut(4 * tw);
                    let (s0, s1) = (&mut s0[j * tw..(j + 1) * tw], &mut s1[j * tw..(j + 1) * tw]);
                    for tx in 0..tw {
                        s0[tx] = e0[tx] + e1[tx] + e2[tx];
                        s1[tx] = e1[tx] - e2[tx] - e3[tx];
                    }
                }
                for r in 0..2 {
                    let oy = 2 * ty + r;
                    if oy >= g.oh {
                        continue;
                    }
                    let s = |j: usize| &rows[(r * 4 + j) * tw..(r * 4 + j + 1) * tw];
                    let (s0, s1, s2, s3) = (s(0), s(1), s(2), s(3));
                    let dst = &mut out[oy * g.ow..(oy + 1) * g.ow];
                    for tx in 0..tw {
                        dst[2 * tx] = s0[tx] + s1[tx] + s2[tx] + b;
                        if 2 * tx + 1 < g.ow {
                            dst[2 * tx + 1] = s1[tx] - s2[tx] - s3[tx] + b;
                        }
                    }
                }
            }
        }
        act.apply(y_img);
    }
}
