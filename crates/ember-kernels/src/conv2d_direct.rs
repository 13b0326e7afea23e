//! Direct 2-D convolution forward for f32 on AVX-512 CPUs: no im2col, no GEMM packing.
//!
//! For stride 1 (no dilation, one group) an output channel's plane, computed over the full
//! padded input width `wp` instead of the output width, is a sum of *contiguous* runs of the
//! padded input: `y[co][oy*wp + ox] = b[co] + Σ_(c,ky,kx) w[co][c][ky][kx] · xp[c][(oy+ky)*wp + ox+kx]`,
//! i.e. every kernel tap reads the input plane shifted by a fixed offset (`ky*wp + kx` into channel `c`'s plane).
//! The kernel walks that flat index in vectors of 16, keeps a tile of 3 vectors x 8 output
//! channels (24 accumulators) in registers, and per tap loads 3 input vectors and broadcasts 8
//! weights (packed once per call so they sit side by side). Bias and activation are applied in
//! registers; the `kw - 1` columns per row computed past the output width are dropped when the
//! planes are compacted. The wide rows cost `wp / ow` extra work (13/11 for the classic CNN's
//! second convolution), less than im2col + packing did.
//!
//! A stride `s > 1` becomes stride 1 by splitting each padded input plane into its `s x s`
//! phases (`phase_split`, the depthwise kernel's layout): tap `(c, ky, kx)` then reads phase
//! `(c, ky % s, kx % s)` shifted by `(ky / s, kx / s)`, again one fixed offset, and the taps stay
//! the kernel's own (no zero taps, unlike a space-to-depth rewrite). The split costs one pass
//! over the input, where im2col wrote `kh*kw / s²` copies of it (12x for ResNet's 7x7 stride-2
//! stem).
//!
//! The GEMM path (`conv2d_gemm`) remains for everything else: f64, other strides, dilations,
//! groups, 1x1 convolutions, CPUs without AVX-512, and layers too wide for the register tile to
//! pay off.

use crate::activation::FusedActivation;
use crate::conv_geometry::ConvGeometry;
use crate::element::{as_f32, as_f32_mut, has_avx512f, Float};
use crate::max_pool::{pool_plane, Plane, Pool2dParams};
use crate::phase_split::{split, PhaseLayout};
use crate::row_copy::copy_row;

/// Output channels per register tile.
const CHANNELS: usize = 8;
/// Input vectors (of 16 f32) per register tile.
const VECTORS: usize = 3;
/// f32 lanes of an AVX-512 register.
const LANES: usize = 16;
/// Largest `c_in * kh * kw` the direct kernel takes (the packed weights of a channel tile stay
/// in L1; wider layers are GEMM-bound and use the GEMM path).
const MAX_TAPS: usize = 1152;
/// Largest `c_in * kh * kw` whose weight gradient vectorises over pixels (more taps vectorise
/// over output channels).
const MAX_PIXEL_VECTOR_TAPS: usize = 32;
/// Kernel taps per pixel-vectorised weight-gradient tile (x 8 channels = 24 accumulators).
const TAPS_PER_TILE: usize = 3;
/// Kernel taps per channel-vectorised weight-gradient tile (x 4 vectors of 16 channels).
const TAPS_PER_CHANNEL_TILE: usize = 6;

/// A planned direct convolution: the geometry it was made for and the packed weights.
#[derive(Debug)]
pub(crate) struct DirectConv {
    /// `[channel tile][tap][CHANNELS]`, zero-padded to whole tiles.
    packed: Vec<f32>,
    /// Flat offset of each tap in the padded input: channel `c`'s phase-split plane starts at
    /// `c * layout.len`, and the tap reads `layout.taps[ky * kw + kx]` into it (at stride 1,
    /// `ky*wp + kx`).
    offsets: Vec<usize>,
    /// The largest of `offsets` (the last tap's only at stride 1: phases reorder them).
    last_offset: usize,
    bias: Vec<f32>,
    tiles: usize,
    /// One input plane's phase-split layout (at stride 1 simply the padded plane).
    layout: PhaseLayout,
    /// Width of a wide output row: a padded (phase) row.
    wp: usize,
    /// Vectors covering one wide output plane (`oh * wp` elements).
    vectors: usize,
    /// Output rows per band: of the forward pass (computed, then compacted while in cache) and
    /// of the many-tap weight gradient (its output gradient transposed and summed over).
    forward_band: usize,
    gradient_band: usize,
    g: ConvGeometry,
}

/// Per-thread scratch: the zero-padded input image and the wide output planes.
pub(crate) struct DirectScratch {
    padded: Vec<f32>,
    wide: Vec<f32>,
    /// One compacted `oh x ow` plane, for pools without a vectorised path.
    compact: Vec<f32>,
    /// Weight gradient, many-tap kernel: the output gradient pixel-major (`oh*ow x o16`) and
    /// the tap-major accumulator (`taps x o16`), `o16` = channels rounded up to 16.
    dz_t: Vec<f32>,
    dw_t: Vec<f32>,
}

/// Whether the CPU runs the kernel (AVX-512F) and `EMBER_DIRECT_CONV=0` does not turn it off
/// (for comparisons with the GEMM path), checked once.
fn cpu_supported() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    has_avx512f() && *ENABLED.get_or_init(|| std::env::var("EMBER_DIRECT_CONV").map_or(true, |v| v != "0"))
}

/// Strides the direct kernel takes: 2 to 4, with kernels wider than the stride (a 1x1 stride-2
/// convolution reads a quarter of its input: im2col's copy is the cheaper split). Measured
/// against im2col + GEMM (batch 16, 2 threads): ResNet-18's 7x7 stem 27–28 → 24–25 ms forward;
/// its 3x3 stride-2 layers over 64 and 128 channels 12–15 → 11–12 ms forward and 30–36 → 25–29
/// ms backward.
fn strided_fits(g: &ConvGeometry) -> bool {
    (2..=4).contains(&g.p.stride) && g.kh > g.p.stride && g.kw > g.p.stride
}
/// Bytes of wide output rows (all channels) the forward pass computes before compacting them:
/// a quarter of a core's L2.
const FORWARD_BAND_BYTES: usize = 256 << 10;
/// Bytes of pixel-major output gradient the many-tap weight gradient takes at once.
const GRADIENT_BAND_BYTES: usize = 256 << 10;

impl DirectConv {
    /// Plans the direct kernel for this convolution, or `None` when it does not apply (see the
    /// module docs) and the GEMM path should run.
    pub fn plan<T: Float>(weight: &[T], bias: Option<&[T]>, g: &ConvGeometry) -> Option<Self> {
        let weight = as_f32(weight)?;
        let p = g.p;
        let taps = g.c * g.kh * g.kw;
        let shape_fits = p.groups == 1
            && (p.stride == 1 || strided_fits(g))
            && p.dilation == 1
            && g.kh * g.kw > 1
            && taps <= MAX_TAPS
            && weight.len() == g.o * taps;
        if !shape_fits || !cpu_supported() {
            return None;
        }
        let layout = PhaseLayout::new(g);
        let wp = layout.width;
        let tiles = g.o.div_ceil(CHANNELS);
        let mut packed = vec![0f32; tiles * taps * CHANNELS];
        for co in 0..g.o {
            let (tile, lane) = (co / CHANNELS, co % CHANNELS);
            for (k, &v) in weight[co * taps..(co + 1) * taps].iter().enumerate() {
                packed[(tile * taps + k) * CHANNELS + lane] = v;
            }
        }
        let offsets: Vec<usize> =
            (0..g.c).flat_map(|c| layout.taps.iter().map(move |&t| c * layout.len + t)).collect::<Vec<_>>();
        let last_offset = offsets.iter().copied().max().unwrap_or(0);
        let mut b = vec![0f32; tiles * CHANNELS];
        if let Some(bias) = bias {
            b[..g.o].copy_from_slice(as_f32(bias)?);
        }
        let vectors = (g.oh * wp).div_ceil(LANES);
        let rows_within = |bytes: usize, row_bytes: usize| (bytes / row_bytes.max(1)).clamp(1, g.oh.max(1));
        let forward_band = rows_within(FORWARD_BAND_BYTES, tiles * CHANNELS * wp * 4);
        let gradient_band = rows_within(GRADIENT_BAND_BYTES, g.ow * g.o.next_multiple_of(LANES) * 4);
        Some(Self {
            packed,
            offsets,
            last_offset,
            bias: b,
            tiles,
            layout,
            wp,
            vectors,
            forward_band,
            gradient_band,
            g: *g,
        })
    }

    /// Scratch for one thread (allocated once per chunk of images).
    pub fn scratch(&self) -> DirectScratch {
        // A plane's layout has a row of slack for its farthest tap's last wide row; the last
        // vector reads up to `LANES - 1` past that: zeros pad the end.
        let padded = vec![0f32; self.g.c * self.layout.len + self.g.kw + 2 * LANES];
        // Two vectors of slack: the vectorised pool reads 32 elements from a row's start.
        let wide = vec![0f32; self.tiles * CHANNELS * self.plane() + 2 * LANES];
        DirectScratch { padded, wide, compact: vec![0f32; self.g.oh * self.g.ow], dz_t: Vec::new(), dw_t: Vec::new() }
    }

    /// One image: `y_img (o x oh x ow) = act(conv(x_img) + bias)`.
    pub fn forward_image<T: Float>(&self, x_img: &[T], act: FusedActivation, s: &mut DirectScratch, y_img: &mut [T]) {
        let Some(y) = as_f32_mut(y_img) else { unreachable!("a DirectConv is only planned for f32") };
        assert!(y.len() == self.g.o * self.g.oh * self.g.ow, "direct conv: output image size");
        self.pad_input(x_img, s);
        let (oh, ow, wp, plane) = (self.g.oh, self.g.ow, self.wp, self.plane());
        // A band of output rows at a time, compacted into `y` while its wide rows are in cache:
        // the stem's wide planes (64 x 112 x 115) are 3.3 MiB an image, and writing them out
        // and reading them back cost as much as computing them.
        let band = self.forward_band;
        for first in (0..oh).step_by(band) {
            let rows = first..(first + band).min(oh);
            self.wide_rows(rows.clone(), act, s);
            for co in 0..self.g.o {
                for oy in rows.clone() {
                    let src = &s.wide[co * plane + oy * wp..co * plane + oy * wp + ow];
                    copy_row(&mut y[(co * oh + oy) * ow..(co * oh + oy + 1) * ow], src);
                }
            }
        }
    }

    /// One image followed by a max pool: `y_img (o x poh x pow)`, and with `indices` each pooled
    /// cell's first maximum as a flat index into the `oh x ow` plane (what the fused backward
    /// expects). The classic 2x2 / stride 2 pool runs vectorised straight off the wide planes;
    /// other pools compact each plane first.
    pub fn forward_image_pooled<T: Float>(
        &self,
        x_img: &[T],
        act: FusedActivation,
        s: &mut DirectScratch,
        pool: &Plane,
        y_img: &mut [T],
        mut indices: Option<&mut [u32]>,
    ) {
        let Some(y) = as_f32_mut(y_img) else { unreachable!("a DirectConv is only planned for f32") };
        let g = &self.g;
        let pohw = pool.oh * pool.ow;
        assert!(
            y.len() == g.o * pohw && indices.as_ref().is_none_or(|ix| ix.len() == y.len()),
            "direct conv: pooled sizes"
        );
        self.wide_image(x_img, act, s);
        let plane = self.plane();
        let classic = pool.p == Pool2dParams::square(2) && pool.h == g.oh && pool.w == g.ow;
        for co in 0..g.o {
            let wide = &s.wide[co * plane..(co + 1) * plane + 2 * LANES];
            let out = &mut y[co * pohw..(co + 1) * pohw];
            let ix = indices.as_deref_mut().map(|ix| &mut ix[co * pohw..(co + 1) * pohw]);
            #[cfg(target_arch = "x86_64")]
            if classic {
                // SAFETY: AVX-512F is present (checked when planning); the wide plane holds
                // `oh * wp` elements plus 2 vectors of slack, the largest read of the pool.
                if unsafe { avx512::pool_2x2(wide, self.wp, g.ow, pool.oh, pool.ow, out, ix) } {
                    continue;
                }
                // A NaN in the plane: the generic pool below gives PyTorch's NaN semantics.
                let ix = indices.as_deref_mut().map(|ix| &mut ix[co * pohw..(co + 1) * pohw]);
                self.pool_compacted(wide, &mut s.compact, pool, out, ix);
                continue;
            }
            self.pool_compacted(wide, &mut s.compact, pool, out, ix);
        }
    }

    fn pool_compacted(&self, wide: &[f32], compact: &mut [f32], pool: &Plane, out: &mut [f32], ix: Option<&mut [u32]>) {
        let (oh, ow, wp) = (self.g.oh, self.g.ow, self.wp);
        for oy in 0..oh {
            copy_row(&mut compact[oy * ow..(oy + 1) * ow], &wide[oy * wp..oy * wp + ow]);
        }
        pool_plane(&compact[..oh * ow], out, ix, pool);
    }

    /// Scratch for the weight gradient (one per thread): [`DirectConv::scratch`] plus the
    /// transposed output gradient and the tap-major gradient accumulator.
    pub fn gradient_scratch(&self) -> DirectScratch {
        let mut s = self.scratch();
        if self.offsets.len() > MAX_PIXEL_VECTOR_TAPS {
            let o16 = self.g.o.next_multiple_of(LANES);
            s.dz_t = vec![0f32; self.gradient_band * self.g.ow * o16];
            s.dw_t = vec![0f32; self.offsets.len() * o16];
        }
        s
    }

    /// Adds one image's weight gradient,
    /// `dw[co][c][ky][kx] += Σ_(oy,ox) dz[co][oy][ox] · x[c][oy+ky-pad][ox+kx-pad]`, to `dw`
    /// (`o x c*kh*kw`) or to the scratch's accumulator; [`DirectConv::flush_weight_gradient`]
    /// moves the accumulator into `dw` after the last image. `s` must come from
    /// [`DirectConv::gradient_scratch`] and serve nothing else.
    ///
    /// Two kernels: few taps (a first layer on 1-3 channels) vectorise over the wide plane, 8
    /// channels x 3 taps at a time, reduced per image; more taps vectorise over output channels
    /// (up to 64 x 6 taps at a time), broadcasting the input, with the output gradient transposed
    /// to pixel-major first. Neither builds im2col.
    pub fn accumulate_weight_gradient<T: Float>(&self, x_img: &[T], dz_img: &[T], s: &mut DirectScratch, dw: &mut [T]) {
        let (Some(dz), Some(dw)) = (as_f32(dz_img), as_f32_mut(dw)) else {
            unreachable!("a DirectConv is only planned for f32")
        };
        let g = &self.g;
        let taps = self.offsets.len();
        assert!(dz.len() == g.o * g.oh * g.ow && dw.len() == g.o * taps, "direct conv: gradient sizes");
        self.pad_input(x_img, s);
        if taps > MAX_PIXEL_VECTOR_TAPS {
            self.weight_gradient_by_channels(dz, s);
        } else {
            self.weight_gradient_by_pixels(dz, s, dw);
        }
    }

    /// Adds the accumulated weight gradient (many-tap kernel) to `dw` and clears it.
    pub fn flush_weight_gradient<T: Float>(&self, s: &mut DirectScratch, dw: &mut [T]) {
        let Some(dw) = as_f32_mut(dw) else { unreachable!("a DirectConv is only planned for f32") };
        if s.dw_t.is_empty() {
            return;
        }
        let (taps, o16) = (self.offsets.len(), self.g.o.next_multiple_of(LANES));
        for co in 0..self.g.o {
            for k in 0..taps {
                dw[co * taps + k] += s.dw_t[k * o16 + co];
            }
        }
        s.dw_t.fill(0.0);
    }

    fn weight_gradient_by_channels(&self, dz: &[f32], s: &mut DirectScratch) {
        let g = &self.g;
        let (oh, ow, ohw, taps) = (g.oh, g.ow, g.oh * g.ow, self.offsets.len());
        let o16 = g.o.next_multiple_of(LANES);
        let band = self.gradient_band;
        assert!(s.dz_t.len() == band * ow * o16 && s.dw_t.len() == taps * o16, "direct conv: gradient scratch");
        assert!(self.last_offset + (oh - 1) * self.wp + ow <= s.padded.len());
        // A band of output rows at a time: every tap block passes over the band's output
        // gradient, which then stays in L2 (the stem's whole one is 3 MiB an image).
        for first in (0..oh).step_by(band) {
            let rows = first..(first + band).min(oh);
            // Pixel-major output gradient; the columns of channels past `o` stay zero. Whole
            // blocks of 16 channels x 16 pixels are transposed in registers (scalar stores
            // strided by `o16` took a third of the stem's weight gradient), the rest one by one.
            let (start, pixels) = (rows.start * ow, rows.len() * ow);
            let (whole_co, whole_p) = (g.o / LANES * LANES, pixels / LANES * LANES);
            for co0 in (0..whole_co).step_by(LANES) {
                for p0 in (0..whole_p).step_by(LANES) {
                    let src = &dz[co0 * ohw + start + p0..];
                    let dst = &mut s.dz_t[p0 * o16 + co0..];
                    // SAFETY: AVX-512F is present (checked when planning); the 16 source rows
                    // end at `15 * ohw + 16 <= src.len()` (channels `co0 + 15 < o` and pixels
                    // `start + p0 + 16 <= ohw`), the 16 destination rows at `15 * o16 + 16 <=
                    // dst.len()` (pixels `p0 + 16 <= band * ow`, channels `co0 + 16 <= o16`).
                    #[cfg(target_arch = "x86_64")]
                    unsafe {
                        avx512::transpose_16x16(src, ohw, dst, o16)
                    };
                }
            }
            for (co, row) in dz.chunks_exact(ohw).enumerate() {
                let row = &row[start..start + pixels];
                let first_p = if co < whole_co { whole_p } else { 0 };
                for (p, &v) in row.iter().enumerate().skip(first_p) {
                    s.dz_t[p * o16 + co] = v;
                }
            }
            self.weight_gradient_band(rows, s);
        }
    }

    /// The many-tap weight gradient's sums over output rows `rows`, whose output gradient is in
    /// `s.dz_t` (pixel-major, from the band's first row).
    fn weight_gradient_band(&self, rows: std::ops::Range<usize>, s: &mut DirectScratch) {
        let (ow, taps, o16) = (self.g.ow, self.offsets.len(), self.g.o.next_multiple_of(LANES));
        for co0 in (0..o16).step_by(4 * LANES) {
            let vectors = ((o16 - co0) / LANES).min(4);
            for k in (0..taps).step_by(TAPS_PER_CHANNEL_TILE) {
                let run = (taps - k).min(TAPS_PER_CHANNEL_TILE);
                // A short last block repeats its first tap; those sums are dropped.
                let offsets: [usize; TAPS_PER_CHANNEL_TILE] = std::array::from_fn(|t| self.offsets[k + t.min(run - 1)]);
                let out = &mut s.dw_t[k * o16..(k + run) * o16];
                let geometry = (rows.clone(), ow, self.wp, o16, co0, run);
                // SAFETY: AVX-512F is present (checked when planning); the reads of `padded`
                // end below the largest offset `+ (oh-1)*wp + ow` (asserted by the caller), those
                // of `dz_t` at `rows.len() * ow * o16` (the band's size, asserted by the caller),
                // and the writes at `run * o16 == out.len()`.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    match vectors {
                        4 => avx512::weight_gradient_by_channels::<4>(&s.padded, &offsets, &s.dz_t, geometry, out),
                        3 => avx512::weight_gradient_by_channels::<3>(&s.padded, &offsets, &s.dz_t, geometry, out),
                        2 => avx512::weight_gradient_by_channels::<2>(&s.padded, &offsets, &s.dz_t, geometry, out),
                        _ => avx512::weight_gradient_by_channels::<1>(&s.padded, &offsets, &s.dz_t, geometry, out),
                    }
                }
            }
        }
    }

    fn weight_gradient_by_pixels(&self, dz: &[f32], s: &mut DirectScratch, dw: &mut [f32]) {
        let g = &self.g;
        let (oh, ow, wp, plane, taps) = (g.oh, g.ow, self.wp, self.plane(), self.offsets.len());
        for co in 0..g.o {
            for oy in 0..oh {
                let dst = co * plane + oy * wp;
                copy_row(&mut s.wide[dst..dst + ow], &dz[(co * oh + oy) * ow..(co * oh + oy + 1) * ow]);
            }
        }
        assert!(s.padded.len() >= self.last_offset + plane && s.wide.len() >= self.tiles * CHANNELS * plane);
        let mut sums = [[0f32; CHANNELS]; TAPS_PER_TILE];
        for tile in 0..self.tiles {
            let dz_tile = &s.wide[tile * CHANNELS * plane..(tile + 1) * CHANNELS * plane];
            let mut k = 0;
            while k < taps {
                let run = (taps - k).min(TAPS_PER_TILE);
                let offsets = &self.offsets[k..k + run];
                // SAFETY: AVX-512F is present (checked when planning); reads end at
                // the largest offset `+ plane <= padded.len()` and `CHANNELS * plane == dz_tile.len()`,
                // asserted above.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    match run {
                        3 => avx512::weight_gradient_tile::<3>(&s.padded, offsets, dz_tile, plane, &mut sums),
                        2 => avx512::weight_gradient_tile::<2>(&s.padded, offsets, dz_tile, plane, &mut sums),
                        _ => avx512::weight_gradient_tile::<1>(&s.padded, offsets, dz_tile, plane, &mut sums),
                    }
                }
                for (t, row) in sums.iter().enumerate().take(run) {
                    for (j, &v) in row.iter().enumerate() {
                        let co = tile * CHANNELS + j;
                        if co < g.o {
                            dw[co * taps + k + t] += v;
                        }
                    }
                }
                k += run;
            }
        }
    }

    /// Elements of one wide output plane in the scratch.
    fn plane(&self) -> usize {
        self.vectors * LANES
    }

    /// Copies one image into the zero-padded, phase-split input scratch (the padding is never
    /// written).
    fn pad_input<T: Float>(&self, x_img: &[T], s: &mut DirectScratch) {
        let Some(x) = as_f32(x_img) else { unreachable!("a DirectConv is only planned for f32") };
        let (g, plane, len) = (&self.g, self.g.h * self.g.w, self.layout.len);
        assert!(x.len() == g.c * plane, "direct conv: input image size");
        for (input, scratch) in x.chunks_exact(plane).zip(s.padded.chunks_exact_mut(len)) {
            split(g, &self.layout, input, scratch);
        }
    }

    /// Computes one image's wide output planes into `s.wide` (f32 only).
    fn wide_image<T: Float>(&self, x_img: &[T], act: FusedActivation, s: &mut DirectScratch) {
        self.pad_input(x_img, s);
        self.wide_rows(0..self.g.oh, act, s);
    }

    /// Computes the wide output rows `rows` of every channel into `s.wide`, from the padded
    /// input already in `s.padded` (the vectors covering them: a vector across a band edge is
    /// computed by both bands, to the same values).
    fn wide_rows(&self, rows: std::ops::Range<usize>, act: FusedActivation, s: &mut DirectScratch) {
        let plane = self.plane();
        let taps = self.offsets.len();
        assert!(s.padded.len() >= self.last_offset + plane && s.wide.len() >= self.tiles * CHANNELS * plane);
        let first = rows.start * self.wp / LANES;
        let last = (rows.end * self.wp).div_ceil(LANES).min(self.vectors);
        for tile in 0..self.tiles {
            let weights = &self.packed[tile * taps * CHANNELS..(tile + 1) * taps * CHANNELS];
            let bias = &self.bias[tile * CHANNELS..(tile + 1) * CHANNELS];
            let out = &mut s.wide[tile * CHANNELS * plane..(tile + 1) * CHANNELS * plane];
            let mut v = first;
            while v < last {
                let run = (last - v).min(VECTORS);
                // SAFETY: AVX-512F is present (checked when planning); reads end at
                // the largest offset `+ plane <= padded.len()` and writes at `CHANNELS * plane ==
                // out.len()`, both asserted above.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    match run {
                        3 => avx512::tile::<3>(&s.padded, &self.offsets, weights, bias, v * LANES, act, out, plane),
                        2 => avx512::tile::<2>(&s.padded, &self.offsets, weights, bias, v * LANES, act, out, plane),
                        _ => avx512::tile::<1>(&s.padded, &self.offsets, weights, bias, v * LANES, act, out, plane),
                    }
                }
                v += run;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{CHANNELS, LANES};
    use crate::activation::FusedActivation;

    /// `out[j][p0 + 16i ..] = act(bias[j] + Σ_k w[k][j] · x[offsets[k] + p0 + 16i ..])` for the
    /// tile's 8 channels `j` and `V` vectors `i`.
    ///
    /// # Safety
    /// AVX-512F must be available; `x` must hold `offsets[k] + p0 + 16 V` elements for every
    /// `k`, `out` must hold `7 * out_stride + p0 + 16 V`, `w` must hold `8 * offsets.len()`.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn tile<const V: usize>(
        x: &[f32],
        offsets: &[usize],
        w: &[f32],
        bias: &[f32],
        p0: usize,
        act: FusedActivation,
        out: &mut [f32],
        out_stride: usize,
    ) {
        // SAFETY: the caller upholds the contract above.
        unsafe {
            debug_assert!(w.len() >= CHANNELS * offsets.len() && bias.len() >= CHANNELS);
            debug_assert!(out.len() >= (CHANNELS - 1) * out_stride + p0 + LANES * V);
            let mut acc = [[_mm512_setzero_ps(); V]; CHANNELS];
            for (j, row) in acc.iter_mut().enumerate() {
                let b = _mm512_set1_ps(bias[j]);
                for a in row.iter_mut() {
                    *a = b;
                }
            }
            let xb = x.as_ptr().add(p0);
            let mut wk = w.as_ptr();
            for &off in offsets {
                debug_assert!(off + p0 + LANES * V <= x.len());
                let xk = xb.add(off);
                let mut xv = [_mm512_setzero_ps(); V];
                for (i, v) in xv.iter_mut().enumerate() {
                    *v = _mm512_loadu_ps(xk.add(LANES * i));
                }
                for (j, row) in acc.iter_mut().enumerate() {
                    let wv = _mm512_set1_ps(*wk.add(j));
                    for (a, v) in row.iter_mut().zip(&xv) {
                        *a = _mm512_fmadd_ps(*v, wv, *a);
                    }
                }
                wk = wk.add(CHANNELS);
            }
            let zero = _mm512_setzero_ps();
            let six = _mm512_set1_ps(6.0);
            let o = out.as_mut_ptr().add(p0);
            for (j, row) in acc.iter().enumerate() {
                for (i, &a) in row.iter().enumerate() {
                    // `max(a, 0)` returns 0 for NaN, as the scalar ReLU does.
                    let v = match act {
                        FusedActivation::Identity => a,
                        FusedActivation::Relu => _mm512_max_ps(a, zero),
                        FusedActivation::Relu6 => _mm512_min_ps(_mm512_max_ps(a, zero), six),
                    };
                    _mm512_storeu_ps(o.add(j * out_stride + LANES * i), v);
                }
            }
        }
    }

    /// The 2x2 / stride 2 max pool of one wide plane (row stride `wp`, output width `ow`)
    /// into `out (poh x pow)`, and with `ix` each cell's first maximum in row-major window
    /// order as a flat index `y * ow + x` into the compact plane. The same choices as the
    /// scalar `pool_plane`: a later element wins only when strictly greater. Returns `false`
    /// when the plane holds a NaN (the caller then redoes it with NaN semantics).
    ///
    /// # Safety
    /// AVX-512F must be available; `wide` must hold `2 * poh * wp + 32` elements, `2 * pow`
    /// must be at most `ow <= wp`, and `out` (and `ix`) must hold `poh * pow` elements.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn pool_2x2(
        wide: &[f32],
        wp: usize,
        ow: usize,
        poh: usize,
        pow: usize,
        out: &mut [f32],
        mut ix: Option<&mut [u32]>,
    ) -> bool {
        debug_assert!(wide.len() >= 2 * poh * wp + 2 * LANES && 2 * pow <= ow && ow <= wp);
        debug_assert!(out.len() >= poh * pow && ix.as_ref().is_none_or(|ix| ix.len() >= poh * pow));
        // SAFETY: the caller upholds the contract above; every read lies below
        // `(2 * poh - 1) * wp + 2 * (pow - 1) + 32 <= wide.len()`.
        unsafe {
            let evens: [i32; 16] = std::array::from_fn(|i| 2 * i as i32);
            let odds: [i32; 16] = std::array::from_fn(|i| 2 * i as i32 + 1);
            let (even, odd) = (_mm512_loadu_epi32(evens.as_ptr()), _mm512_loadu_epi32(odds.as_ptr()));
            let one = _mm512_set1_epi32(1);
            let mut nan: __mmask16 = 0;
            for py in 0..poh {
                let r0 = wide.as_ptr().add(2 * py * wp);
                let r1 = r0.add(wp);
                let mut px = 0;
                while px < pow {
                    let n = (pow - px).min(LANES);
                    let mask: __mmask16 = if n == LANES { 0xffff } else { ((1u32 << n) - 1) as u16 };
                    let (a0, a1) = (_mm512_loadu_ps(r0.add(2 * px)), _mm512_loadu_ps(r0.add(2 * px + LANES)));
                    let (b0, b1) = (_mm512_loadu_ps(r1.add(2 * px)), _mm512_loadu_ps(r1.add(2 * px + LANES)));
                    let (te, to) = (_mm512_permutex2var_ps(a0, even, a1), _mm512_permutex2var_ps(a0, odd, a1));
                    let (be, bo) = (_mm512_permutex2var_ps(b0, even, b1), _mm512_permutex2var_ps(b0, odd, b1));
                    for v in [te, to, be, bo] {
                        nan |= _mm512_mask_cmp_ps_mask::<_CMP_UNORD_Q>(mask, v, v);
                    }
                    let top_odd = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(to, te);
                    let top = _mm512_mask_blend_ps(top_odd, te, to);
                    let bottom_odd = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(bo, be);
                    let bottom = _mm512_mask_blend_ps(bottom_odd, be, bo);
                    let bottom_wins = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(bottom, top);
                    let m = _mm512_mask_blend_ps(bottom_wins, top, bottom);
                    _mm512_mask_storeu_ps(out.as_mut_ptr().add(py * pow + px), mask, m);
                    if let Some(ix) = ix.as_deref_mut() {
                        // Window (py, px + lane) starts at row 2py, column 2 (px + lane).
                        let start = _mm512_add_epi32(_mm512_set1_epi32((2 * py * ow + 2 * px) as i32), even);
                        let top_i = _mm512_mask_add_epi32(start, top_odd, start, one);
                        let below = _mm512_add_epi32(start, _mm512_set1_epi32(ow as i32));
                        let bottom_i = _mm512_mask_add_epi32(below, bottom_odd, below, one);
                        let idx = _mm512_mask_blend_epi32(bottom_wins, top_i, bottom_i);
                        _mm512_mask_storeu_epi32(ix.as_mut_ptr().add(py * pow + px).cast::<i32>(), mask, idx);
                    }
                    px += LANES;
                }
            }
            nan == 0
        }
    }

    /// `sums[t][j] = Σ_p dz[j * plane + p] · x[offsets[t] + p]` over `p < plane` for the
    /// tile's 8 channels `j` and `T` taps `t`.
    ///
    /// # Safety
    /// AVX-512F must be available; `plane` must be a multiple of 16, `dz` must hold
    /// `8 * plane` elements and `x` `offsets[t] + plane` for every `t`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn weight_gradient_tile<const T: usize>(
        x: &[f32],
        offsets: &[usize],
        dz: &[f32],
        plane: usize,
        sums: &mut [[f32; CHANNELS]; super::TAPS_PER_TILE],
    ) {
        debug_assert!(plane.is_multiple_of(LANES) && dz.len() >= CHANNELS * plane && offsets.len() == T);
        debug_assert!(offsets.iter().all(|&o| o + plane <= x.len()));
        // SAFETY: the caller upholds the contract above.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); T]; CHANNELS];
            let mut p = 0;
            while p < plane {
                let mut xv = [_mm512_setzero_ps(); T];
                for (v, &off) in xv.iter_mut().zip(offsets) {
                    *v = _mm512_loadu_ps(x.as_ptr().add(off + p));
                }
                for (j, row) in acc.iter_mut().enumerate() {
                    let d = _mm512_loadu_ps(dz.as_ptr().add(j * plane + p));
                    for (a, v) in row.iter_mut().zip(&xv) {
                        *a = _mm512_fmadd_ps(d, *v, *a);
                    }
                }
                p += LANES;
            }
            for (j, row) in acc.iter().enumerate() {
                for (t, a) in row.iter().enumerate() {
                    sums[t][j] = _mm512_reduce_add_ps(*a);
                }
            }
        }
    }

    /// Transposes a 16 x 16 block: row `i` of `src` (16 floats from `i * src_stride`) becomes
    /// column `i` of `dst` (rows `dst_stride` apart), by unpacks and lane shuffles in registers.
    ///
    /// # Safety
    /// AVX-512F must be available; `src` must hold `15 * src_stride + 16` elements and `dst`
    /// `15 * dst_stride + 16`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose_16x16(src: &[f32], src_stride: usize, dst: &mut [f32], dst_stride: usize) {
        assert!(src.len() >= 15 * src_stride + LANES && dst.len() >= 15 * dst_stride + LANES);
        // SAFETY: the caller guarantees AVX-512F; the bounds are asserted above.
        unsafe {
            let mut r: [__m512; LANES] = std::array::from_fn(|i| _mm512_loadu_ps(src.as_ptr().add(i * src_stride)));
            let mut t = [_mm512_setzero_ps(); LANES];
            // Pairs of rows interleaved by 32-bit elements, then pairs of pairs by 64-bit ones:
            // each 128-bit lane then holds 4 rows of one column; two rounds of lane shuffles
            // gather a column's 4 lanes.
            for i in 0..8 {
                t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            for i in 0..4 {
                let pd = |v: __m512| _mm512_castps_pd(v);
                r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[4 * i]), pd(t[4 * i + 2])));
                r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[4 * i]), pd(t[4 * i + 2])));
                r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[4 * i + 1]), pd(t[4 * i + 3])));
                r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[4 * i + 1]), pd(t[4 * i + 3])));
            }
            for i in 0..2 {
                for j in 0..4 {
                    t[8 * i + j] = _mm512_shuffle_f32x4::<0x88>(r[8 * i + j], r[8 * i + 4 + j]);
                    t[8 * i + 4 + j] = _mm512_shuffle_f32x4::<0xdd>(r[8 * i + j], r[8 * i + 4 + j]);
                }
            }
            for j in 0..8 {
                r[j] = _mm512_shuffle_f32x4::<0x88>(t[j], t[8 + j]);
                r[8 + j] = _mm512_shuffle_f32x4::<0xdd>(t[j], t[8 + j]);
            }
            for (k, v) in r.iter().enumerate() {
                _mm512_storeu_ps(dst.as_mut_ptr().add(k * dst_stride), *v);
            }
        }
    }

    /// `out[t][co0 + c] += Σ_(oy,ox) dz_t[(oy - rows.start)*ow + ox][co0 + c] · x[offsets[t] + oy*wp + ox]`
    /// over `oy` in `rows`, for `V` vectors of 16 channels `c` and the first `run` of the 6 taps `t`.
    ///
    /// # Safety
    /// AVX-512F must be available; `x` must hold `offsets[t] + (rows.end-1)*wp + ow` elements for
    /// every `t`, `dz_t` `rows.len()*ow*o16` with `co0 + 16 V <= o16`, `out` `run * o16`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn weight_gradient_by_channels<const V: usize>(
        x: &[f32],
        offsets: &[usize; super::TAPS_PER_CHANNEL_TILE],
        dz_t: &[f32],
        (rows, ow, wp, o16, co0, run): (std::ops::Range<usize>, usize, usize, usize, usize, usize),
        out: &mut [f32],
    ) {
        const T: usize = super::TAPS_PER_CHANNEL_TILE;
        debug_assert!(
            co0 + LANES * V <= o16 && dz_t.len() >= rows.len() * ow * o16 && out.len() >= run * o16 && run <= T
        );
        debug_assert!(offsets.iter().all(|&o| o + (rows.end - 1) * wp + ow <= x.len()));
        // SAFETY: the caller upholds the contract above.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); V]; T];
            let xs = x.as_ptr();
            for oy in rows.clone() {
                for ox in 0..ow {
                    let d_row = dz_t.as_ptr().add(((oy - rows.start) * ow + ox) * o16 + co0);
                    let mut d = [_mm512_setzero_ps(); V];
                    for (v, dv) in d.iter_mut().enumerate() {
                        *dv = _mm512_loadu_ps(d_row.add(LANES * v));
                    }
                    let q = oy * wp + ox;
                    for (row, &off) in acc.iter_mut().zip(offsets) {
                        let xv = _mm512_set1_ps(*xs.add(off + q));
                        for (a, dv) in row.iter_mut().zip(&d) {
                            *a = _mm512_fmadd_ps(*dv, xv, *a);
                        }
                    }
                }
            }
            for (t, row) in acc.iter().enumerate().take(run) {
                for (v, a) in row.iter().enumerate() {
                    let o = out.as_mut_ptr().add(t * o16 + co0 + LANES * v);
                    _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), *a));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv_geometry::Conv2dParams;
    use candle_core::Shape;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A direct-kernel test's RNG, `StdRng::seed_from_u64(seed)`; `None` (after saying so) on a
    /// CPU without AVX-512F, where the direct kernel never runs.
    fn rng_if_avx512(seed: u64) -> Option<StdRng> {
        if !cpu_supported() {
            eprintln!("SKIPPED: this CPU has no AVX-512F; the direct kernel never runs here");
            return None;
        }
        Some(StdRng::seed_from_u64(seed))
    }

    /// The geometry of one `c x h x w` image under `o` filters of `k x k` with `padding`.
    fn one_image_geometry(c: usize, o: usize, (h, w): (usize, usize), k: usize, padding: usize) -> ConvGeometry {
        strided_geometry(c, o, (h, w), k, padding, 1)
    }

    /// [`one_image_geometry`] with a stride.
    fn strided_geometry(
        c: usize,
        o: usize,
        (h, w): (usize, usize),
        k: usize,
        padding: usize,
        stride: usize,
    ) -> ConvGeometry {
        let p = Conv2dParams { padding, stride, ..Conv2dParams::default() };
        ConvGeometry::new(&Shape::from((1, c, h, w)), &Shape::from((o, c, k, k)), p).unwrap()
    }

    /// The input position tap `(ky, kx)` of output `(oy, ox)` reads, if inside the image.
    fn input_at(g: &ConvGeometry, (oy, ox): (usize, usize), (ky, kx): (usize, usize)) -> Option<(usize, usize)> {
        let (s, pad) = (g.p.stride as isize, g.p.padding as isize);
        let (iy, ix) = (oy as isize * s + ky as isize - pad, ox as isize * s + kx as isize - pad);
        (iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w).then_some((iy as usize, ix as usize))
    }

    /// The convolution by its definition, in f64.
    fn reference(x: &[f32], w: &[f32], b: &[f32], g: &ConvGeometry, act: FusedActivation) -> Vec<f32> {
        let mut y = vec![0f32; g.o * g.oh * g.ow];
        for co in 0..g.o {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut s = b[co] as f64;
                    for c in 0..g.c {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                if let Some((iy, ix)) = input_at(g, (oy, ox), (ky, kx)) {
                                    let xv = x[(c * g.h + iy) * g.w + ix] as f64;
                                    s += xv * w[((co * g.c + c) * g.kh + ky) * g.kw + kx] as f64;
                                }
                            }
                        }
                    }
                    y[(co * g.oh + oy) * g.ow + ox] = s as f32;
                }
            }
        }
        act.apply(&mut y);
        y
    }

    #[test]
    fn direct_kernel_equals_the_definition_over_tiles_remainders_and_padding() {
        let Some(mut rng) = rng_if_avx512(12345) else { return };
        // (c, o, h, w, k, padding, stride): channel counts that leave partial tiles of 8, planes
        // whose vector count leaves 1 or 2 vectors after the runs of 3, even/odd kernels,
        // padding; strides 2 and 3 (input phases) on odd sizes, the 7x7 stem and a 3x3 over 40
        // channels among them.
        let cases = [
            (1, 32, 28, 28, 3, 0, 1),
            (32, 64, 13, 13, 3, 0, 1),
            (3, 19, 9, 11, 3, 1, 1),
            (5, 8, 7, 6, 2, 0, 1),
            (2, 3, 10, 5, 5, 2, 1),
            (7, 17, 12, 12, 4, 1, 1),
            (4, 9, 1, 1, 3, 1, 1),
            (3, 20, 23, 19, 7, 3, 2),
            (2, 9, 10, 13, 3, 1, 2),
            (4, 8, 17, 14, 4, 0, 3),
            (1, 5, 6, 9, 5, 2, 2),
            (40, 19, 15, 13, 3, 1, 2),
        ];
        let mut next = move || rng.random_range(-1f32..1.0);
        for (c, o, h, w, k, padding, stride) in cases {
            let g = strided_geometry(c, o, (h, w), k, padding, stride);
            let x: Vec<f32> = (0..c * h * w).map(|_| next()).collect();
            let wt: Vec<f32> = (0..o * c * k * k).map(|_| next()).collect();
            let b: Vec<f32> = (0..o).map(|_| next()).collect();
            let mut plan = DirectConv::plan(&wt, Some(&b), &g).expect("the direct kernel applies");
            let mut scratch = plan.scratch();
            // Bands of 2 rows as well as the planned ones: band edges inside the plane.
            for (band, act) in [(0, FusedActivation::Identity), (0, FusedActivation::Relu), (2, FusedActivation::Relu6)]
            {
                if band > 0 {
                    plan.forward_band = band;
                }
                let mut y = vec![f32::NAN; o * g.oh * g.ow];
                // Twice with the same scratch: leftovers of one image must not leak into the next.
                plan.forward_image(&x, act, &mut scratch, &mut y);
                plan.forward_image(&x, act, &mut scratch, &mut y);
                let want = reference(&x, &wt, &b, &g, act);
                for (i, (a, e)) in y.iter().zip(&want).enumerate() {
                    assert!(
                        (a - e).abs() <= 1e-5 * (1.0 + e.abs()),
                        "case {c}x{o} {h}x{w} k{k} p{padding} s{stride} {act:?}: [{i}] {a} vs {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn direct_kernel_with_pool_equals_the_definition_then_the_scalar_pool_including_ties_and_nan() {
        let Some(mut rng) = rng_if_avx512(99) else { return };
        // Small integers: many exact ties inside pooling windows.
        let mut next = move || rng.random_range(-2i32..=2) as f32;
        // (c, o, h, w, k, padding, pool): widths that give 1, 6, 13 and 19 (> 16) pooled columns.
        let square = Pool2dParams::square(2);
        let overlapping = Pool2dParams { kernel: (3, 3), stride: (2, 2), padding: (1, 1) };
        let cases = [
            (1, 32, 28, 28, 3, 0, square),
            (32, 64, 13, 13, 3, 0, square),
            (2, 11, 40, 42, 3, 1, square),
            (3, 5, 4, 5, 2, 0, square),
            (2, 9, 12, 13, 3, 1, overlapping),
            (3, 9, 23, 21, 3, 1, overlapping),
        ];
        for (case, (c, o, h, w, k, padding, pool)) in cases.into_iter().enumerate() {
            let g = one_image_geometry(c, o, (h, w), k, padding);
            // The last case is ResNet's stem: 7x7 stride 2 (input phases), then the pool.
            let g = if case + 1 == cases.len() { strided_geometry(c, o, (h, w), 7, 3, 2) } else { g };
            let k = g.kh;
            let (poh, pow) = pool.output_size(g.oh, g.ow).unwrap();
            let plane = Plane { h: g.oh, w: g.ow, oh: poh, ow: pow, p: pool };
            let mut x: Vec<f32> = (0..c * h * w).map(|_| next()).collect();
            if case == 1 {
                x[5] = f32::NAN;
            }
            let wt: Vec<f32> = (0..o * c * k * k).map(|_| next()).collect();
            let b: Vec<f32> = (0..o).map(|_| next()).collect();
            let plan = DirectConv::plan(&wt, Some(&b), &g).expect("the direct kernel applies");
            let mut scratch = plan.scratch();
            for act in [FusedActivation::Identity, FusedActivation::Relu] {
                let full = reference(&x, &wt, &b, &g, act);
                let (mut want, mut want_ix) = (vec![0f32; o * poh * pow], vec![0u32; o * poh * pow]);
                for co in 0..o {
                    let cells = co * poh * pow..(co + 1) * poh * pow;
                    let conv = &full[co * g.oh * g.ow..(co + 1) * g.oh * g.ow];
                    pool_plane(conv, &mut want[cells.clone()], Some(&mut want_ix[cells]), &plane);
                }
                let (mut y, mut ix) = (vec![0f32; want.len()], vec![7u32; want.len()]);
                plan.forward_image_pooled(&x, act, &mut scratch, &plane, &mut y, Some(&mut ix));
                for i in 0..want.len() {
                    let same = y[i] == want[i] || (y[i].is_nan() && want[i].is_nan());
                    assert!(
                        same && ix[i] == want_ix[i],
                        "case {case} {act:?} cell {i}: {} @{} vs {} @{}",
                        y[i],
                        ix[i],
                        want[i],
                        want_ix[i]
                    );
                }
                let mut values_only = vec![0f32; want.len()];
                plan.forward_image_pooled(&x, act, &mut scratch, &plane, &mut values_only, None);
                assert!(
                    values_only.iter().zip(&y).all(|(a, b)| a == b || (a.is_nan() && b.is_nan())),
                    "case {case}: without indices"
                );
            }
        }
    }

    #[test]
    fn direct_weight_gradient_equals_the_definition() {
        let Some(mut rng) = rng_if_avx512(7) else { return };
        let mut next = move || rng.random_range(-1f32..1.0);
        // (c, o, h, w, k, padding): the classic first layer, an RGB stem with padding, odd tiles.
        // Then many taps (the channel-vectorised kernel): the classic second layer, 64+ channels
        // in several blocks, channel counts off multiples of 16, tap counts off multiples of 6.
        // Strided (input phases): the 7x7 stem and 3x3s over 4 and 40 channels, all many-tap, with
        // channels past 16 (transposed 16 x 16 in registers, the rest one by one) and bands of
        // one and two rows (band = 0: as planned).
        for (c, o, h, w, k, padding, stride, band) in [
            (1, 32, 28, 28, 3, 0, 1, 0),
            (3, 16, 10, 9, 3, 1, 1, 0),
            (2, 5, 7, 8, 2, 0, 1, 0),
            (1, 9, 6, 6, 5, 2, 1, 0),
            (32, 64, 13, 13, 3, 0, 1, 0),
            (32, 64, 13, 13, 3, 0, 1, 2),
            (5, 80, 6, 7, 3, 1, 1, 0),
            (7, 21, 5, 9, 2, 0, 1, 1),
            (9, 3, 4, 4, 3, 1, 1, 0),
            (3, 35, 37, 41, 7, 3, 2, 0),
            (3, 35, 37, 41, 7, 3, 2, 3),
            (4, 17, 11, 12, 3, 1, 2, 1),
            (40, 33, 15, 13, 3, 1, 2, 0),
        ] {
            let g = strided_geometry(c, o, (h, w), k, padding, stride);
            let taps = c * k * k;
            let wt = vec![0f32; o * taps];
            let mut plan = DirectConv::plan(&wt, None, &g).expect("the direct kernel applies");
            if band > 0 {
                plan.gradient_band = band;
            }
            let mut scratch = plan.gradient_scratch();
            let mut dw = vec![0f32; o * taps];
            let mut want = vec![0f64; o * taps];
            for _image in 0..2 {
                let x: Vec<f32> = (0..c * h * w).map(|_| next()).collect();
                let dz: Vec<f32> = (0..o * g.oh * g.ow).map(|_| next()).collect();
                plan.accumulate_weight_gradient(&x, &dz, &mut scratch, &mut dw);
                if _image == 1 {
                    plan.flush_weight_gradient(&mut scratch, &mut dw);
                }
                for co in 0..o {
                    for ci in 0..c {
                        for ky in 0..k {
                            for kx in 0..k {
                                let mut s = 0f64;
                                for oy in 0..g.oh {
                                    for ox in 0..g.ow {
                                        if let Some((iy, ix)) = input_at(&g, (oy, ox), (ky, kx)) {
                                            s += dz[(co * g.oh + oy) * g.ow + ox] as f64
                                                * x[(ci * h + iy) * w + ix] as f64;
                                        }
                                    }
                                }
                                want[co * taps + (ci * k + ky) * k + kx] += s;
                            }
                        }
                    }
                }
            }
            for (i, (a, e)) in dw.iter().zip(&want).enumerate() {
                assert!(
                    (*a as f64 - e).abs() <= 1e-4 * (1.0 + e.abs()),
                    "case {c}x{o} k{k} p{padding} s{stride} band {band}: dw[{i}] {a} vs {e}"
                );
            }
        }
    }

    #[test]
    fn direct_kernel_is_not_planned_for_shapes_it_does_not_cover() {
        let g = |p: Conv2dParams, k: usize| {
            ConvGeometry::new(&Shape::from((1, 4, 9, 9)), &Shape::from((4, 4 / p.groups, k, k)), p).unwrap()
        };
        let w = vec![0f32; 4 * 4 * 9];
        for p in [
            Conv2dParams { dilation: 2, ..Conv2dParams::default() },
            Conv2dParams { groups: 2, ..Conv2dParams::default() },
        ] {
            assert!(DirectConv::plan(&w[..4 * 4 / p.groups * 9], None, &g(p, 3)).is_none(), "{p:?}");
        }
        // Strided: strides 2 to 4, kernels wider than the stride, within the tap limit.
        let stride = |s: usize| Conv2dParams { stride: s, ..Conv2dParams::default() };
        assert!(DirectConv::plan(&w, None, &g(stride(2), 3)).is_some(), "3x3 stride 2");
        assert!(DirectConv::plan(&w[..4 * 4 * 4], None, &g(stride(2), 2)).is_none(), "2x2 stride 2");
        assert!(DirectConv::plan(&vec![0f32; 4 * 4 * 25], None, &g(stride(5), 5)).is_none(), "stride 5");
        let wide = ConvGeometry::new(&Shape::from((1, 256, 9, 9)), &Shape::from((4, 256, 3, 3)), stride(2)).unwrap();
        assert!(DirectConv::plan(&vec![0f32; 4 * 256 * 9], None, &wide).is_none(), "2304 taps");
        assert!(DirectConv::plan(&w[..16], None, &g(Conv2dParams::default(), 1)).is_none(), "1x1");
        let w64 = vec![0f64; 4 * 4 * 9];
        assert!(DirectConv::plan(&w64, None, &g(Conv2dParams::default(), 3)).is_none(), "f64");
    }
}
