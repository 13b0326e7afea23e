//! Layer normalisation over the trailing dimensions.

use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};
use ember_kernels::init::Init;

use crate::weight_init::candle_init;
use crate::{ModuleTree, Param};

/// Configuration for [`LayerNorm`] (PyTorch's `nn.LayerNorm` arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNormConfig {
    /// The trailing dimensions normalised together.
    pub normalized_shape: Vec<usize>,
    /// Added to the variance before the square root.
    pub eps: f64,
    /// Whether the layer has a learned elementwise scale `weight` and shift `bias`.
    pub elementwise_affine: bool,
}

impl LayerNormConfig {
    /// PyTorch's defaults (`eps = 1e-5`, affine) over the given trailing shape.
    pub fn new(normalized_shape: &[usize]) -> Self {
        Self { normalized_shape: normalized_shape.to_vec(), eps: 1e-5, elementwise_affine: true }
    }
}

/// Layer normalisation: each sample's trailing `normalized_shape` elements get zero mean and unit
/// (biased) variance, then `* weight + bias` (parameters `{prefix}.weight`, `{prefix}.bias`,
/// shaped `normalized_shape`, ones and zeros).
///
/// # Shapes
/// - input: `(..., *normalized_shape)`
/// - output: the input's shape
#[derive(Debug, Clone, ModuleTree)]
#[module(kind = LayerNorm)]
pub struct LayerNorm {
    #[module(skip)]
    name: String,
    #[module(skip)]
    cfg: LayerNormConfig,
    weight: Option<Param>,
    bias: Option<Param>,
}

impl LayerNorm {
    /// Reads or creates `{vb}.weight` and `{vb}.bias` (if elementwise affine).
    pub fn new(cfg: &LayerNormConfig, vb: VarBuilder) -> Result<Self> {
        let shape = cfg.normalized_shape.clone();
        if shape.is_empty() || shape.contains(&0) {
            candle_core::bail!("layer_norm `{}`: bad normalized shape {shape:?}", vb.prefix())
        }
        let (weight, bias) = if cfg.elementwise_affine {
            (
                Some(vb.get_with_hints(shape.clone(), "weight", candle_init(Init::ones()))?),
                Some(vb.get_with_hints(shape, "bias", candle_init(Init::zeros()))?),
            )
        } else {
            (None, None)
        };
        Ok(Self { name: vb.prefix(), cfg: cfg.clone(), weight: weight.map(Param::new), bias: bias.map(Param::new) })
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let norm = &self.cfg.normalized_shape;
        let dims = xs.dims();
        if dims.len() < norm.len() || &dims[dims.len() - norm.len()..] != norm.as_slice() {
            candle_core::bail!("layer_norm `{}`: expected input (..., {norm:?}), got {dims:?}", self.name)
        }
        let n: usize = norm.iter().product();
        let x = xs.reshape((xs.elem_count() / n, n))?;
        let centred = x.broadcast_sub(&x.mean_keepdim(1)?)?;
        let var = centred.sqr()?.mean_keepdim(1)?;
        let y = centred.broadcast_div(&(var + self.cfg.eps)?.sqrt()?)?.reshape(dims)?;
        match (&self.weight, &self.bias) {
            (Some(w), Some(b)) => y.broadcast_mul(&w.value()?)?.broadcast_add(&b.value()?),
            _ => Ok(y),
        }
    }
}
