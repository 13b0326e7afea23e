//! The window geometry of 2-D pooling, shared by the pooling kernels, the fused convolution
//! with pooling, and the portable (gathered-window) path.

use candle_core::Result;

/// Window geometry of a 2-D pooling layer, `(height, width)` pairs as in PyTorch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2dParams {
    /// Window size.
    pub kernel: (usize, usize),
    /// Step between windows.
    pub stride: (usize, usize),
    /// Implicit padding on each side (padded cells never win the maximum).
    pub padding: (usize, usize),
}

impl Pool2dParams {
    /// A `k x k` window with stride `k` and no padding (the classic non-overlapping pool).
    pub fn square(k: usize) -> Self {
        Self { kernel: (k, k), stride: (k, k), padding: (0, 0) }
    }

    /// A `kernel x kernel` window moved by `stride` in both directions, with `padding` on every side.
    pub fn square_window(kernel: usize, stride: usize, padding: usize) -> Self {
        Self { kernel: (kernel, kernel), stride: (stride, stride), padding: (padding, padding) }
    }

    /// Output height and width for an input of `h x w`, or an error naming the bad geometry.
    pub fn output_size(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        let (kh, kw) = self.kernel;
        let (sh, sw) = self.stride;
        let (ph, pw) = self.padding;
        if kh == 0 || kw == 0 || sh == 0 || sw == 0 {
            candle_core::bail!("pool2d: kernel {:?} and stride {:?} must be positive", self.kernel, self.stride)
        }
        if ph * 2 > kh || pw * 2 > kw {
            candle_core::bail!("pool2d: padding {:?} must be at most half the kernel {:?}", self.padding, self.kernel)
        }
        if h + 2 * ph < kh || w + 2 * pw < kw {
            candle_core::bail!(
                "pool2d: input {h}x{w} (padding {:?}) is smaller than the kernel {:?}",
                self.padding,
                self.kernel
            )
        }
        Ok(((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1))
    }
}

/// One plane's pooling geometry (input and output sizes, window), shared by the pooling
/// kernels' forward and backward passes and the fused convolution with pooling.
#[derive(Clone, Copy)]
pub(crate) struct Plane {
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub p: Pool2dParams,
}
