//! im2col and col2im: the windows of a convolution's input laid out as the columns of a matrix
//! (`c/g * kh * kw` rows, one column per output position), so the convolution is one GEMM, and
//! a gradient of those columns added back onto the input's planes.

use crate::conv_geometry::ConvGeometry;
use crate::element::Float;
use crate::row_copy::copy_row;

/// The windows of one group of one image (`cg x h x w`) into `col` (`ck` rows `row_stride`
/// apart, the image's `oh*ow` columns at the start of each).
#[inline(always)]
pub(crate) fn im2col_strided<T: Float>(x: &[T], g: &ConvGeometry, col: &mut [T], row_stride: usize) {
    im2col_rows(x, g, col, row_stride, 0..g.oh);
}

/// The windows of output rows `oys` only (`oys.len() * ow` columns), into rows of `col`
/// `row_stride` apart.
#[inline(always)]
pub(crate) fn im2col_rows<T: Float>(
    x: &[T],
    g: &ConvGeometry,
    col: &mut [T],
    row_stride: usize,
    oys: std::ops::Range<usize>,
) {
    let (h, w, ow) = (g.h, g.w, g.ow);
    let (s, d, pad) = (g.p.stride, g.p.dilation, g.p.padding as isize);
    let first = oys.start;
    for c in 0..g.cg() {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = ((c * g.kh + ki) * g.kw + kj) * row_stride;
                let row = &mut col[row..row + oys.len() * ow];
                let x_off = (kj * d) as isize - pad;
                let (lo, hi) = g.valid_range(x_off, w, ow);
                for oy in oys.clone() {
                    let out = &mut row[(oy - first) * ow..(oy - first + 1) * ow];
                    let iy = (oy * s + ki * d) as isize - pad;
                    if iy < 0 || iy >= h as isize {
                        for v in out.iter_mut() {
                            *v = T::ZERO;
                        }
                        continue;
                    }
                    let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                    for v in &mut out[..lo] {
                        *v = T::ZERO;
                    }
                    for v in &mut out[hi..] {
                        *v = T::ZERO;
                    }
                    if lo == hi {
                        continue;
                    }
                    let start = (lo as isize * s as isize + x_off) as usize;
                    match s {
                        1 => copy_row(&mut out[lo..hi], &src[start..start + hi - lo]),
                        // A constant stride lets the compiler vectorise the gather (ResNet's stem
                        // and strided 3x3 convolutions).
                        2 => out[lo..hi].iter_mut().zip(src[start..].iter().step_by(2)).for_each(|(v, x)| *v = *x),
                        _ => out[lo..hi].iter_mut().zip(src[start..].iter().step_by(s)).for_each(|(v, x)| *v = *x),
                    }
                }
            }
        }
    }
}

/// Adds the columns of `col` (`ck` rows `row_stride` apart, the image's `oh*ow` columns at the
/// start of each) back onto one group of one image's gradient.
pub(crate) fn col2im_strided<T: Float>(col: &[T], g: &ConvGeometry, dx: &mut [T], row_stride: usize) {
    col2im_rows(col, g, dx, row_stride, 0..g.oh);
}

/// Adds the columns of `col` (rows `row_stride` apart, each the windows of output rows `oys`)
/// back onto one group of one image's gradient.
pub(crate) fn col2im_rows<T: Float>(
    col: &[T],
    g: &ConvGeometry,
    dx: &mut [T],
    row_stride: usize,
    oys: std::ops::Range<usize>,
) {
    let (h, w, ow) = (g.h, g.w, g.ow);
    let (s, d, pad) = (g.p.stride, g.p.dilation, g.p.padding as isize);
    let (first, cols) = (oys.start, oys.len() * ow);
    for c in 0..g.cg() {
        let plane = &mut dx[c * h * w..(c + 1) * h * w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = ((c * g.kh + ki) * g.kw + kj) * row_stride;
                let row = &col[row..row + cols];
                let x_off = (kj * d) as isize - pad;
                let (lo, hi) = g.valid_range(x_off, w, ow);
                for oy in oys.clone() {
                    let iy = (oy * s + ki * d) as isize - pad;
                    if iy < 0 || iy >= h as isize || lo == hi {
                        continue;
                    }
                    let src = &row[(oy - first) * ow..(oy - first + 1) * ow];
                    let dst = &mut plane[iy as usize * w..(iy as usize + 1) * w];
                    let start = (lo as isize * s as isize + x_off) as usize;
                    if s == 1 {
                        for (d, v) in dst[start..start + hi - lo].iter_mut().zip(&src[lo..hi]) {
                            *d += *v;
                        }
                    } else {
                        for (i, v) in src[lo..hi].iter().enumerate() {
                            dst[start + i * s] += *v;
                        }
                    }
                }
            }
        }
    }
}
