//! Bounds-checked calls into the `gemm` crate (the matrix multiply candle itself uses).

use gemm::Parallelism;
use rayon::prelude::*;

use crate::element::Float;

/// A strided matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    pub data: &'a [T],
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a, T> Mat<'a, T> {
    /// A row-major matrix with `cols` columns.
    pub fn rows(data: &'a [T], cols: usize) -> Self {
        Self { data, row_stride: cols, col_stride: 1 }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [T], cols: usize) -> Self {
        Self { data, row_stride: 1, col_stride: cols }
    }

    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.row_stride + (cols - 1) * self.col_stride < self.data.len()
    }
}

/// `dst (m x n, row-major) = [dst +] lhs (m x k) · rhs (k x n)`.
///
/// # Panics
/// When a view is too short for the sizes given (a bug in the calling kernel, never user input:
/// kernels check shapes before they get here).
pub(crate) fn matmul<T: Float>(
    dst: &mut [T],
    (m, n, k): (usize, usize, usize),
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
    accumulate: bool,
    threads: usize,
) {
    matmul_into_rows(dst, n, (m, n, k), lhs, rhs, accumulate, threads)
}

/// [`matmul`] into rows of `dst` that lie `dst_row_stride >= n` apart (a block of columns of a
/// wider matrix).
///
/// # Panics
/// As [`matmul`].
pub(crate) fn matmul_into_rows<T: Float>(
    dst: &mut [T],
    dst_row_stride: usize,
    (m, n, k): (usize, usize, usize),
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
    accumulate: bool,
    threads: usize,
) {
    let dst_view = Mat { data: &*dst, row_stride: dst_row_stride, col_stride: 1 };
    assert!(
        dst_row_stride >= n && dst_view.fits(m, n) && lhs.fits(m, k) && rhs.fits(k, n),
        "matmul: operand too short for {m}x{k}x{n}"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_row_stride).take(m) {
                row[..n].fill(T::ZERO);
            }
        }
        return;
    }
    let parallelism = if threads > 1 { Parallelism::Rayon(threads) } else { Parallelism::None };
    // SAFETY: every index gemm reads or writes lies inside the slices, as checked above
    // (`dst`, `lhs` and `rhs` were checked with their strides).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_row_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// [`matmul`] with the `m` rows of `dst` split into one block per rayon thread, each block a
/// single-threaded GEMM. For a layer's products at training batch sizes (tens of MFLOP), the
/// GEMM's own threading costs more than it saves: measured on the classic CNN's `fc1`, two
/// threads through `Parallelism::Rayon` took longer than one.
pub(crate) fn matmul_parallel_rows<T: Float>(
    dst: &mut [T],
    (m, n, k): (usize, usize, usize),
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
    accumulate: bool,
) {
    assert!(dst.len() >= m * n && lhs.fits(m, k), "matmul: operand too short for {m}x{k}x{n}");
    if m == 0 || n == 0 {
        return;
    }
    let rows = m.div_ceil(rayon::current_num_threads().max(1));
    dst[..m * n].par_chunks_mut(rows * n).enumerate().for_each(|(block, d)| {
        let lhs = Mat { data: &lhs.data[block * rows * lhs.row_stride..], ..lhs };
        matmul(d, (d.len() / n, n, k), lhs, rhs, accumulate, 1);
    });
}
