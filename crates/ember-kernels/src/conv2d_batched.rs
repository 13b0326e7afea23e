//! Convolutions over small planes (ResNet's 14x14 and 7x7 layers): the whole batch's im2col
//! columns side by side, so each GEMM is as wide as the batch's output positions, not one image's.
//!
//! One image's GEMM on a 7x7 output has 49 columns against a `512 x 2304` weight: the GEMM then
//! mostly streams the weight (or, backward, the `2304 x 49` column gradient) through the cache
//! once per image. With the columns of a group of images side by side (`ck x n*ohw`, filled in
//! parallel over input channels) one GEMM on every thread does the whole group:
//! - forward: `z = w · col` (`o x n*ohw`), then each image's rows out, plus bias, through the
//!   activation;
//! - backward, on the activation-masked output gradient `dz` (`o x n*ohw`): `dw += dz · colᵀ`,
//!   `db += Σ dz`, and `dcol = wᵀ · dz`, added back onto each image's input gradient by col2im.
//!
//! Measured on ResNet-18's 256 → 512 3x3 stride-2 layer (batch 16, 2 threads, `conv_profile 8`,
//! fastest of 8): forward 14.1–14.5 → 11.0–11.3 ms, input gradient 16.3 → 12.1 ms (the weight
//! gradient was batched already); its 128 → 256 layer's backward 27.8 → 24.7 ms.

use rayon::prelude::*;

use crate::activation::FusedActivation;
use crate::conv_geometry::{ConvGeometry, ConvGrads, Needs};
use crate::conv_spec::ConvSpec;
use crate::element::{sum, Float};
use crate::im2col::{col2im_strided, im2col_strided};
use crate::matmul::{matmul, Mat};

/// Output positions per image below which the batched paths run: with ResNet's 7x7 and 14x14
/// planes (49 and 196 columns against a `512 x 4608` weight gradient) a GEMM per image spent its
/// time reading and writing the matrix it shares with the other images.
const SMALL_PLANE_COLUMNS: usize = 256;

/// Bytes of im2col columns one batched GEMM takes at once (a group of images).
pub(crate) const BATCH_BYTES: usize = 16 << 20;

/// Whether the batched paths compute this convolution: small planes, one group, a kernel of more
/// than one tap, more than one image. A 1x1 kernel's columns are its input (pointwise) or a
/// subsample of it, whose per-image GEMMs stream nothing large: ResNet-18's 1x1 stride-2 layers
/// ran 10–25 % slower batched (`conv_profile 7` and `10`, forward and backward).
pub(crate) fn applies(g: &ConvGeometry) -> bool {
    g.p.groups == 1 && g.kh * g.kw > 1 && g.ohw() < SMALL_PLANE_COLUMNS && g.b > 1
}

/// Images per group: as many as `budget_bytes` of columns hold, at least one.
fn group_len<T>(g: &ConvGeometry, budget_bytes: usize) -> usize {
    let per_image = g.ck() * g.ohw() * std::mem::size_of::<T>();
    (budget_bytes / per_image.max(1)).clamp(1, g.b)
}

/// The im2col columns of images `first..first + n` side by side into `col` (`ck` rows of
/// `n * ohw`), in parallel over input channels (the rows of channel `c` read only its planes).
fn fill_columns<T: Float>(x: &[T], g: &ConvGeometry, first: usize, n: usize, col: &mut [T]) {
    let (ohw, kk, stride) = (g.ohw(), g.kh * g.kw, n * g.ohw());
    let channel = ConvGeometry { c: 1, ..*g };
    col[..g.ck() * stride].par_chunks_mut(kk * stride).enumerate().for_each(|(c, rows)| {
        for i in 0..n {
            let plane = (first + i) * g.in_image() + c * g.h * g.w;
            im2col_strided(&x[plane..plane + g.h * g.w], &channel, &mut rows[i * ohw..], stride);
        }
    });
}

/// `act(conv(x, w) + bias)` for small planes ([`applies`]), a group of images per GEMM.
pub(crate) fn forward<T: Float>(x: &[T], conv: ConvSpec<'_, T>, budget_bytes: usize) -> Vec<T> {
    let ConvSpec { weight, bias, act, g } = conv;
    let (ck, ohw, o) = (g.ck(), g.ohw(), g.o);
    let group = group_len::<T>(g, budget_bytes);
    let threads = rayon::current_num_threads().max(1);
    let mut y = crate::element::zeroed(g.b * g.out_image());
    let mut col = crate::element::zeroed(ck * group * ohw);
    let mut z = crate::element::zeroed(o * group * ohw);
    for first in (0..g.b).step_by(group) {
        let n = group.min(g.b - first);
        let stride = n * ohw;
        fill_columns(x, g, first, n, &mut col);
        // The GEMM adds onto the bias, as the per-image path does: each output is then the same
        // sum in the same order whatever the batch (a max pool's ties resolve alike).
        if let Some(b) = bias {
            z[..o * stride].chunks_exact_mut(stride).zip(b).for_each(|(row, b)| row.fill(*b));
        }
        let (w, cols) = (Mat::rows(weight, ck), Mat::rows(&col[..ck * stride], stride));
        matmul(&mut z[..o * stride], (o, stride, ck), w, cols, bias.is_some(), threads);
        let z = &z[..o * stride];
        y[first * g.out_image()..(first + n) * g.out_image()].par_chunks_mut(g.out_image()).enumerate().for_each(
            |(i, y_img)| {
                for (oc, row) in y_img.chunks_exact_mut(ohw).enumerate() {
                    row.copy_from_slice(&z[oc * stride + i * ohw..oc * stride + (i + 1) * ohw]);
                    act.apply(row);
                }
            },
        );
    }
    y
}

/// The gradients `needs` asks for, of small planes ([`applies`]), given the forward output `y`
/// (for the activation's mask) and its gradient `dy`; a group of images per GEMM.
pub(crate) fn backward<T: Float>(
    x: &[T],
    weight: &[T],
    (y, dy): (&[T], &[T]),
    act: FusedActivation,
    g: &ConvGeometry,
    needs: Needs,
    budget_bytes: usize,
) -> ConvGrads<T> {
    let (ck, ohw, o) = (g.ck(), g.ohw(), g.o);
    let group = group_len::<T>(g, budget_bytes);
    let threads = rayon::current_num_threads().max(1);
    let mut dw = needs.weight.then(|| crate::element::zeroed(o * ck));
    let mut db = needs.bias.then(|| vec![T::ZERO; o]);
    let mut dx = needs.x.then(|| crate::element::zeroed(g.b * g.in_image()));
    // The columns, and after the weight gradient has read them, the column gradient.
    let mut col = crate::element::zeroed(ck * group * ohw);
    let mut dz = crate::element::zeroed(o * group * ohw);
    for first in (0..g.b).step_by(group) {
        let n = group.min(g.b - first);
        let stride = n * ohw;
        dz[..o * stride].par_chunks_mut(stride).enumerate().for_each(|(oc, row)| {
            for i in 0..n {
                let at = (first + i) * g.out_image() + oc * ohw;
                act.mask_gradient(&y[at..at + ohw], &dy[at..at + ohw], &mut row[i * ohw..(i + 1) * ohw]);
            }
        });
        let dz_rows = Mat::rows(&dz[..o * stride], stride);
        if let Some(db) = db.as_mut() {
            for (b, row) in db.iter_mut().zip(dz[..o * stride].chunks_exact(stride)) {
                *b += sum(row);
            }
        }
        if let Some(dw) = dw.as_mut() {
            fill_columns(x, g, first, n, &mut col);
            let col_t = Mat { data: &col, row_stride: 1, col_stride: stride };
            matmul(dw, (o, ck, stride), dz_rows, col_t, first > 0, threads);
        }
        if let Some(dx) = dx.as_mut() {
            // dcol (ck x n*ohw) = wᵀ (ck x o) · dz (o x n*ohw), then each image's columns added
            // back onto its planes, in parallel over images.
            let w_t = Mat::transposed(weight, ck);
            matmul(&mut col[..ck * stride], (ck, stride, o), w_t, dz_rows, false, threads);
            let dcol = &col[..ck * stride];
            dx[first * g.in_image()..(first + n) * g.in_image()]
                .par_chunks_mut(g.in_image())
                .enumerate()
                .for_each(|(i, dx_img)| col2im_strided(&dcol[i * ohw..], g, dx_img, stride));
        }
    }
    ConvGrads { x: dx, weight: dw, bias: db }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv_geometry::Conv2dParams;
    use candle_core::Shape;

    fn wave(n: usize, f: f64) -> Vec<f64> {
        (0..n).map(|i| (i as f64 * f).sin()).collect()
    }

    /// The batched paths give the same results whether the batch is one GEMM or one per image
    /// (the byte budget decides; the integration tests check the one-GEMM case against candle):
    /// a later group that overwrote instead of adding, or landed on the wrong images, fails here.
    #[test]
    fn batched_paths_add_up_their_groups() {
        let p = Conv2dParams { padding: 1, stride: 2, dilation: 1, groups: 1 };
        let g = ConvGeometry::new(&Shape::from((3, 4, 9, 7)), &Shape::from((5, 4, 3, 3)), p).unwrap();
        let (x, w, bias) = (wave(g.b * g.in_image(), 0.37), wave(5 * 4 * 9, 0.71), wave(5, 1.3));
        let (y, dy) = (wave(g.b * g.out_image(), 0.91), wave(g.b * g.out_image(), 0.53));
        let conv = ConvSpec { weight: &w, bias: Some(&bias), act: FusedActivation::Relu, g: &g };
        let (one, per_image) = (forward(&x, conv, usize::MAX), forward(&x, conv, 1));
        assert!(one.iter().any(|v| *v > 0.1), "an output of zeros proves nothing");
        assert_eq!(one, per_image);
        let needs = Needs { x: true, weight: true, bias: true };
        let one = backward(&x, &w, (&y, &dy), FusedActivation::Relu, &g, needs, usize::MAX);
        let per_image = backward(&x, &w, (&y, &dy), FusedActivation::Relu, &g, needs, 1);
        for (a, b) in [(one.x, per_image.x), (one.weight, per_image.weight), (one.bias, per_image.bias)] {
            let (a, b) = (a.unwrap(), b.unwrap());
            assert!(a.iter().any(|v| v.abs() > 0.1), "a gradient of zeros proves nothing");
            for (a, b) in a.iter().zip(&b) {
                assert!((a - b).abs() < 1e-12, "{a} vs {b}");
            }
        }
    }
}
