//! Fully connected layer.

use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};
use ember_kernels::init::Init;

use crate::conv2d::candle_init;

/// `y = x W^T + b` with parameters `{prefix}.weight` `(out, in)` and `{prefix}.bias` `(out,)`,
/// initialised as PyTorch's `nn.Linear`.
///
/// # Shapes
/// - input: `(..., in_features)`
/// - output: `(..., out_features)`
#[derive(Debug, Clone)]
pub struct Linear {
    name: String,
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Reads or creates `{vb}.weight` and, when `bias` is true, `{vb}.bias`.
    pub fn new(in_features: usize, out_features: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        let init = candle_init(Init::pytorch_default(in_features));
        let weight = vb.get_with_hints((out_features, in_features), "weight", init)?;
        let bias = if bias { Some(vb.get_with_hints(out_features, "bias", init)?) } else { None };
        Ok(Self { name: vb.prefix(), weight, bias })
    }

    /// Number of input features.
    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Number of output features.
    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let in_features = self.in_features();
        if xs.rank() == 0 || xs.dims()[xs.rank() - 1] != in_features {
            candle_core::bail!("linear `{}`: expected input (..., {in_features}), got {:?}", self.name, xs.dims())
        }
        let ys = match xs.dims() {
            [b, _] => xs.matmul(&self.weight.t()?)?.reshape((*b, self.out_features()))?,
            _ => xs.broadcast_matmul(&self.weight.t()?)?,
        };
        match &self.bias {
            Some(bias) => ys.broadcast_add(bias),
            None => Ok(ys),
        }
    }
}
