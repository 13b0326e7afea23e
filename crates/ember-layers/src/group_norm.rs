//! Group normalisation.

use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};
use ember_kernels::init::Init;

use crate::weight_init::candle_init;
use crate::{ModuleTree, Param};

/// Configuration for [`GroupNorm`] (PyTorch's `nn.GroupNorm` arguments).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupNormConfig {
    /// Number of channel groups normalised separately.
    pub num_groups: usize,
    /// Number of channels `c` (a multiple of `num_groups`).
    pub num_channels: usize,
    /// Added to the variance before the square root.
    pub eps: f64,
    /// Whether the layer has a learned per-channel scale `weight` and shift `bias`.
    pub affine: bool,
}

impl GroupNormConfig {
    /// PyTorch's defaults (`eps = 1e-5`, affine).
    pub fn new(num_groups: usize, num_channels: usize) -> Self {
        Self { num_groups, num_channels, eps: 1e-5, affine: true }
    }
}

/// Group normalisation: per sample, each group of `c / num_groups` channels (with all their
/// positions) gets zero mean and unit biased variance, then a per-channel `* weight + bias`
/// (`{prefix}.weight`, `{prefix}.bias`, ones and zeros). Same in train and eval.
///
/// # Shapes
/// - input: `(b, c, *)`
/// - output: the input's shape
#[derive(Debug, Clone, ModuleTree)]
#[module(kind = GroupNorm)]
pub struct GroupNorm {
    #[module(skip)]
    name: String,
    #[module(skip)]
    cfg: GroupNormConfig,
    weight: Option<Param>,
    bias: Option<Param>,
}

impl GroupNorm {
    /// Reads or creates `{vb}.weight` and `{vb}.bias` (if affine).
    pub fn new(cfg: &GroupNormConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.num_groups == 0 || !cfg.num_channels.is_multiple_of(cfg.num_groups) {
            candle_core::bail!(
                "group_norm `{}`: {} channels do not split into {} groups",
                vb.prefix(),
                cfg.num_channels,
                cfg.num_groups
            )
        }
        let (weight, bias) = if cfg.affine {
            (
                Some(vb.get_with_hints(cfg.num_channels, "weight", candle_init(Init::ones()))?),
                Some(vb.get_with_hints(cfg.num_channels, "bias", candle_init(Init::zeros()))?),
            )
        } else {
            (None, None)
        };
        Ok(Self { name: vb.prefix(), cfg: *cfg, weight: weight.map(Param::new), bias: bias.map(Param::new) })
    }
}

impl Module for GroupNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (c, g) = (self.cfg.num_channels, self.cfg.num_groups);
        let dims = xs.dims();
        if dims.len() < 2 || dims[1] != c {
            candle_core::bail!("group_norm `{}`: expected input (batch, {c}, ...), got {dims:?}", self.name)
        }
        let b = dims[0];
        let n = xs.elem_count() / (b * c);
        let x = xs.reshape((b, g, c / g * n))?;
        let centred = x.broadcast_sub(&x.mean_keepdim(2)?)?;
        let var = centred.sqr()?.mean_keepdim(2)?;
        let y = centred.broadcast_div(&(var + self.cfg.eps)?.sqrt()?)?.reshape((b, c, n))?;
        let y = match (&self.weight, &self.bias) {
            (Some(w), Some(bias)) => {
                y.broadcast_mul(&w.value()?.reshape((1, c, 1))?)?.broadcast_add(&bias.value()?.reshape((1, c, 1))?)?
            }
            _ => y,
        };
        y.reshape(dims)
    }
}
