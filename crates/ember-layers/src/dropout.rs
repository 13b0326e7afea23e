//! Dropout and channel-wise dropout with reproducible masks.
//!
//! candle's CPU random generator cannot be seeded, so each layer owns a seeded
//! [`rand::rngs::StdRng`] (shared by clones) and draws its masks from it: the same seed and the
//! same sequence of train-mode calls give the same masks on every run.

use std::sync::{Arc, Mutex};

use candle_core::{Result, Tensor};
use candle_nn::ModuleT;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Configuration for [`Dropout`] and [`Dropout2d`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropoutConfig {
    /// Probability of zeroing an element (or a channel), in `[0, 1]`.
    pub p: f64,
    /// Seed of the layer's mask generator.
    pub seed: u64,
}

/// The shared, seeded mask generator.
#[derive(Debug, Clone)]
struct MaskRng {
    p: f64,
    rng: Arc<Mutex<StdRng>>,
}

impl MaskRng {
    fn new(cfg: &DropoutConfig, what: &str) -> Result<Self> {
        if !(0.0..=1.0).contains(&cfg.p) {
            candle_core::bail!("{what}: drop probability {} is not in [0, 1]", cfg.p)
        }
        Ok(Self { p: cfg.p, rng: Arc::new(Mutex::new(StdRng::seed_from_u64(cfg.seed))) })
    }

    /// `xs * mask / (1 - p)` with a Bernoulli(1 - p) mask of `mask_shape` broadcast over `xs`.
    fn apply(&self, xs: &Tensor, mask_shape: &[usize]) -> Result<Tensor> {
        if self.p == 0.0 {
            return Ok(xs.clone());
        }
        if self.p == 1.0 {
            return xs.zeros_like();
        }
        let n: usize = mask_shape.iter().product();
        let keep = 1.0 / (1.0 - self.p);
        let mask: Vec<f64> = {
            let mut rng = self.rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            (0..n).map(|_| if rng.random::<f64>() < self.p { 0.0 } else { keep }).collect()
        };
        let mask = Tensor::from_vec(mask, mask_shape, xs.device())?.to_dtype(xs.dtype())?;
        xs.broadcast_mul(&mask)
    }
}

/// Zeroes each element with probability `p` in train mode and scales the rest by `1 / (1 - p)`;
/// the identity in eval mode (PyTorch's `nn.Dropout`).
///
/// # Shapes
/// - input: any shape
/// - output: the input's shape
#[derive(Debug, Clone)]
pub struct Dropout {
    mask: MaskRng,
}

impl Dropout {
    /// A dropout layer drawing its masks from `StdRng::seed_from_u64(cfg.seed)`.
    pub fn new(cfg: &DropoutConfig) -> Result<Self> {
        Ok(Self { mask: MaskRng::new(cfg, "dropout")? })
    }
}

impl ModuleT for Dropout {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        if !train {
            return Ok(xs.clone());
        }
        self.mask.apply(xs, xs.dims())
    }
}

/// Zeroes whole channels with probability `p` in train mode and scales the rest by
/// `1 / (1 - p)`; the identity in eval mode (PyTorch's `nn.Dropout2d`).
///
/// # Shapes
/// - input: `(b, c, h, w)` (or `(b, c, l)`)
/// - output: the input's shape
#[derive(Debug, Clone)]
pub struct Dropout2d {
    mask: MaskRng,
}

impl Dropout2d {
    /// A channel-dropout layer drawing its masks from `StdRng::seed_from_u64(cfg.seed)`.
    pub fn new(cfg: &DropoutConfig) -> Result<Self> {
        Ok(Self { mask: MaskRng::new(cfg, "dropout2d")? })
    }
}

impl ModuleT for Dropout2d {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let dims = xs.dims();
        if !(3..=4).contains(&dims.len()) {
            candle_core::bail!("dropout2d: expected input (batch, channels, height, width), got {dims:?}")
        }
        if !train {
            return Ok(xs.clone());
        }
        let mut mask_shape = vec![1; dims.len()];
        mask_shape[0] = dims[0];
        mask_shape[1] = dims[1];
        self.mask.apply(xs, &mask_shape)
    }
}
