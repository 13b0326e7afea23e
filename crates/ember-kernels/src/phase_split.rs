//! A padded plane split into its `stride x stride` phases: phase `(ry, rx)` holds the padded
//! rows `ry, ry + s, ...` and columns `rx, rx + s, ...`, so every tap of a strided (or unit
//! stride) window reads one contiguous run of a phase, at one fixed offset. The depthwise kernel
//! and the direct convolution both compute "wide" output rows (a phase row's full width, the
//! last columns discarded) over this layout.

use crate::conv_geometry::ConvGeometry;
use crate::element::Float;
use crate::row_copy::copy_row;

/// Where a plane's phases live in the scratch plane and where each tap reads.
#[derive(Debug)]
pub(crate) struct PhaseLayout {
    /// Width of a phase row (and of a wide output row).
    pub(crate) width: usize,
    /// Elements of one phase.
    pub(crate) phase: usize,
    /// Elements of the scratch plane: every phase, plus one row of slack so that the last
    /// wide row of the farthest tap stays inside it.
    pub(crate) len: usize,
    /// Padded rows and columns the windows reach (the rest of the padded plane is never read).
    pub(crate) reach: (usize, usize),
    /// Per tap, the scratch offset its wide output element 0 reads.
    pub(crate) taps: Vec<usize>,
    /// See [`column_runs`].
    pub(crate) runs: Vec<(usize, usize, usize)>,
    /// Elements of the wide output: `oh` rows of `width`.
    pub(crate) wide: usize,
}

impl PhaseLayout {
    pub(crate) fn new(g: &ConvGeometry) -> Self {
        let (s, d) = (g.p.stride, g.p.dilation);
        let rows = (g.oh - 1) * s + (g.kh - 1) * d + 1;
        let cols = (g.ow - 1) * s + (g.kw - 1) * d + 1;
        let (height, width) = (rows.div_ceil(s), cols.div_ceil(s));
        let phase = height * width;
        let mut taps = Vec::with_capacity(g.kh * g.kw);
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let (y, x) = (ki * d, kj * d);
                taps.push(((y % s) * s + x % s) * phase + (y / s) * width + x / s);
            }
        }
        let runs = column_runs(g, phase, cols);
        Self { width, phase, len: s * s * phase + width, reach: (rows, cols), taps, runs, wide: g.oh * width }
    }

    /// Calls `f(from, start, count)` for every input row and column phase: the input elements
    /// `from, from + s, ...` (`count` of them, `s` the stride) sit at the consecutive scratch
    /// positions `start..start + count`. Elements the windows never reach are left out.
    #[inline(always)]
    pub(crate) fn for_each_run(&self, g: &ConvGeometry, mut f: impl FnMut(usize, usize, usize)) {
        let (rows, _) = self.reach;
        // Row y of the padded plane is row y / s of phase row y % s; stepped, not divided.
        let top = g.pad.top;
        let (mut y, mut ry, mut qy) = (top, top % g.p.stride, top / g.p.stride);
        for iy in 0..g.h {
            if y >= rows {
                break;
            }
            let row = ry * g.p.stride * self.phase + qy * self.width;
            for &(first, column, count) in &self.runs {
                f(iy * g.w + first, row + column, count);
            }
            y += 1;
            ry += 1;
            if ry == g.p.stride {
                ry = 0;
                qy += 1;
            }
        }
    }
}

/// Per column phase `rx`, the first input column in it, its scratch offset within a phase row
/// group, and how many of the row's columns it holds; phases that hold none are left out.
fn column_runs(g: &ConvGeometry, phase: usize, cols: usize) -> Vec<(usize, usize, usize)> {
    let (s, pad) = (g.p.stride, g.pad.left);
    (0..s)
        .filter_map(|rx| {
            // The first input column whose padded column falls in phase rx.
            let first = (rx + s - pad % s) % s;
            let x = first + pad;
            (first < g.w && x < cols).then(|| {
                let count = ((g.w - 1 - first) / s + 1).min((cols - 1 - x) / s + 1);
                (first, rx * phase + x / s, count)
            })
        })
        .collect()
}

/// Copies one input plane into the phase-split scratch plane. Only the input's positions are
/// written, the same ones for every plane of a call, so the padding stays as the caller zeroed
/// it once.
#[inline(always)]
pub(crate) fn split<T: Float>(g: &ConvGeometry, layout: &PhaseLayout, input: &[T], scratch: &mut [T]) {
    let s = g.p.stride;
    layout.for_each_run(g, |from, start, count| {
        let dst = &mut scratch[start..start + count];
        match s {
            1 => copy_row(dst, &input[from..from + count]),
            // A constant stride lets the compiler vectorise the gather with shuffles.
            2 => dst.iter_mut().zip(input[from..].iter().step_by(2)).for_each(|(d, v)| *d = *v),
            _ => dst.iter_mut().zip(input[from..].iter().step_by(s)).for_each(|(d, v)| *d = *v),
        }
    });
}
