//! A rectangular window of an image, where what lies outside the image comes from a padding
//! rule: the one copy routine behind crops and padding.

use image::Pixel;

use crate::sample::{channels, Image};

/// How pixels outside the image are made up when a crop reaches past its border
/// (torchvision's `padding_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaddingMode {
    /// Zero (black) pixels: torchvision's `constant` with fill 0.
    #[default]
    Zero,
    /// The nearest border pixel repeated: torchvision's `edge`.
    Edge,
    /// Mirrored without repeating the border pixel (`3 2 1 | 0 1 2 3 | 2 1`): `reflect`.
    Reflect,
    /// Mirrored including the border pixel (`2 1 0 | 0 1 2 3 | 3 2`): `symmetric`.
    Symmetric,
}

impl PaddingMode {
    /// The source index for coordinate `i` of an axis of length `n > 0`; `None` for zero fill.
    pub(crate) fn source_index(self, i: i64, n: i64) -> Option<usize> {
        if (0..n).contains(&i) {
            return Some(i as usize);
        }
        let j = match self {
            PaddingMode::Zero => return None,
            PaddingMode::Edge => i.clamp(0, n - 1),
            PaddingMode::Reflect if n == 1 => 0,
            PaddingMode::Reflect => {
                let period = 2 * (n - 1);
                let m = i.rem_euclid(period);
                if m < n {
                    m
                } else {
                    period - m
                }
            }
            PaddingMode::Symmetric => {
                let m = i.rem_euclid(2 * n);
                if m < n {
                    m
                } else {
                    2 * n - 1 - m
                }
            }
        };
        Some(j as usize)
    }
}

/// The `width x height` window of `image` whose top-left corner is at `(left, top)` (which may
/// be negative or past the border); pixels outside the image follow `mode`.
pub(crate) fn copy_window<P: Pixel>(
    image: &Image<P>,
    left: i64,
    top: i64,
    width: u32,
    height: u32,
    mode: PaddingMode,
) -> Image<P> {
    let c = channels::<P>();
    let (iw, ih) = (image.width() as i64, image.height() as i64);
    let mut out = Image::<P>::new(width, height);
    if iw == 0 || ih == 0 {
        return out;
    }
    let src: &[P::Subpixel] = image.as_raw();
    let row_len = width as usize * c;
    let dst: &mut [P::Subpixel] = &mut out;
    if mode == PaddingMode::Zero {
        // Columns [x0, x1) of the window lie inside the image: one slice copy per row.
        let x0 = (-left).clamp(0, width as i64);
        let x1 = (iw - left).clamp(x0, width as i64);
        for y in 0..height as usize {
            let sy = top + y as i64;
            if x0 == x1 || sy < 0 || sy >= ih {
                continue;
            }
            let s = (sy as usize * iw as usize + (left + x0) as usize) * c;
            let n = (x1 - x0) as usize * c;
            let d = y * row_len + x0 as usize * c;
            dst[d..d + n].copy_from_slice(&src[s..s + n]);
        }
        return out;
    }
    let xs: Vec<usize> = (0..width as i64).map(|x| mode.source_index(left + x, iw).unwrap_or(0)).collect();
    for (y, row) in dst.chunks_exact_mut(row_len.max(1)).enumerate() {
        let sy = mode.source_index(top + y as i64, ih).unwrap_or(0);
        let src_row = &src[sy * iw as usize * c..(sy + 1) * iw as usize * c];
        for (px, &sx) in row.chunks_exact_mut(c).zip(&xs) {
            px.copy_from_slice(&src_row[sx * c..sx * c + c]);
        }
    }
    out
}
