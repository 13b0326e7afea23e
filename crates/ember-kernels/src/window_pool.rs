//! Max and average pooling written with candle's indexing ops, for the devices ember has no
//! pooling kernel for (and for CPU dtypes other than f32/f64).
//!
//! candle's own pooling cannot stand in: its max-pool backward routes the gradient to every
//! element equal to the maximum and mishandles overlapping windows, its average-pool backward
//! only handles `kernel == stride`, and neither pads. Here the windows are gathered with
//! `index_select` from a precomputed table of input positions (padding points at one extra
//! column holding the padding value), so every overlap and every padded cell is explicit, and
//! the backward pass is candle's `index_select` backward, an `index_add` that accumulates where
//! windows overlap. Max pooling picks the first maximum of each window in row-major order
//! (PyTorch's rule) with a `gather`, whose backward sends each output gradient to exactly that
//! one element.

use candle_core::{DType, Result, Tensor};

use crate::pool_geometry::Pool2dParams;

/// What a window reduces to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowReduce {
    /// Its first maximum (padded cells are −∞ and never win).
    Max,
    /// Its mean, padded cells counting as zeros in the divisor (`count_include_pad=True`).
    Mean,
}

/// Pools `xs` `(b, c, h, w)` over the windows of `params` with candle's ops on `xs`'s device.
pub(crate) fn window_pool2d(xs: &Tensor, params: Pool2dParams, reduce: WindowReduce) -> Result<Tensor> {
    let (b, c, h, w) = xs.dims4()?;
    let (oh, ow) = params.output_size(h, w)?;
    let taps = params.kernel.0 * params.kernel.1;
    let pad_value = match reduce {
        WindowReduce::Max => f64::NEG_INFINITY,
        WindowReduce::Mean => 0.0,
    };
    let planes = xs.reshape((b * c, h * w))?;
    let pad_column = Tensor::full(pad_value, (b * c, 1), xs.device())?.to_dtype(xs.dtype())?;
    let padded = Tensor::cat(&[&planes, &pad_column], 1)?;
    let table = window_table(params, (h, w), (oh, ow))?;
    let index = Tensor::from_vec(table, oh * ow * taps, xs.device())?;
    let windows = padded.index_select(&index, 1)?.reshape((b * c, oh * ow, taps))?;
    let pooled = match reduce {
        WindowReduce::Mean => (windows.sum(2)? / taps as f64)?,
        WindowReduce::Max => {
            let first = first_max_index(&windows, taps)?;
            windows.gather(&first, 2)?.squeeze(2)?
        }
    };
    pooled.reshape((b, c, oh, ow))
}

/// For each output cell and window tap, in that order, the flat input position it reads
/// (`row * w + col`), or `h * w` (the padding column) for a tap outside the input.
fn window_table(params: Pool2dParams, (h, w): (usize, usize), (oh, ow): (usize, usize)) -> Result<Vec<u32>> {
    let (kh, kw) = params.kernel;
    let (sh, sw) = params.stride;
    let (ph, pw) = params.padding;
    let pad = u32::try_from(h * w)
        .map_err(|_| candle_core::Error::Msg(format!("pool2d: a {h}x{w} plane is too large to index")))?;
    let mut table = Vec::with_capacity(oh * ow * kh * kw);
    for i in 0..oh {
        for j in 0..ow {
            for p in 0..kh {
                for q in 0..kw {
                    // Positions in the padded plane; the input starts at (ph, pw).
                    let (row, col) = (i * sh + p, j * sw + q);
                    let inside = (ph..ph + h).contains(&row) && (pw..pw + w).contains(&col);
                    // Fits in u32: it is below h * w, which does.
                    table.push(if inside { ((row - ph) * w + (col - pw)) as u32 } else { pad });
                }
            }
        }
    }
    Ok(table)
}

/// `(n, cells, 1)` index of the first maximum along the last axis of `windows` `(n, cells,
/// taps)`. The maxima are scored by how early they come (`taps - tap`), so the winner is unique
/// and no device's `argmax` tie-breaking can change it.
fn first_max_index(windows: &Tensor, taps: usize) -> Result<Tensor> {
    let is_max = windows.broadcast_ge(&windows.max_keepdim(2)?)?.to_dtype(DType::F32)?;
    let earliness: Vec<f32> = (0..taps).map(|tap| (taps - tap) as f32).collect();
    let earliness = Tensor::from_vec(earliness, (1, 1, taps), windows.device())?;
    is_max.broadcast_mul(&earliness)?.argmax_keepdim(2)
}
