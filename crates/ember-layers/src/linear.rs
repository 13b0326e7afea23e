//! Fully connected layer.

use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};
use ember_kernels::FusedActivation;

use crate::weight_init::candle_init;
use crate::weight_init::WeightInit;
use crate::{ModuleTree, Param};

/// `y = x W^T + b` with parameters `{prefix}.weight` `(out, in)` and `{prefix}.bias` `(out,)`,
/// initialised as PyTorch's `nn.Linear` (or as Keras's `Dense`, see [`Linear::with_init`]).
///
/// # Shapes
/// - input: `(..., in_features)`
/// - output: `(..., out_features)`
#[derive(Debug, Clone, ModuleTree)]
#[module(kind = Linear)]
pub struct Linear {
    #[module(skip)]
    name: String,
    weight: Param,
    bias: Option<Param>,
}

impl Linear {
    /// Reads or creates `{vb}.weight` and, when `bias` is true, `{vb}.bias`.
    pub fn new(in_features: usize, out_features: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        Self::with_init(in_features, out_features, bias, WeightInit::PyTorch, vb)
    }

    /// As [`Linear::new`], drawing new parameters as `init` says (PyTorch's or Keras's default).
    pub fn with_init(
        in_features: usize,
        out_features: usize,
        bias: bool,
        init: WeightInit,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight_init = candle_init(init.weight(in_features, out_features));
        let weight = vb.get_with_hints((out_features, in_features), "weight", weight_init)?;
        let bias_init = candle_init(init.bias(in_features));
        let bias = if bias { Some(vb.get_with_hints(out_features, "bias", bias_init)?) } else { None };
        Ok(Self { name: vb.prefix(), weight: Param::new(weight), bias: bias.map(Param::new) })
    }

    /// Number of input features.
    pub fn in_features(&self) -> usize {
        self.weight.tensor().dims()[1]
    }

    /// Number of output features.
    pub fn out_features(&self) -> usize {
        self.weight.tensor().dims()[0]
    }
}

impl Linear {
    /// `act(xs · weightᵀ + bias)` as one fused op (see [`ember_kernels::linear`]): the
    /// activation costs no extra pass or gradient tensor.
    pub fn forward_with_activation(&self, xs: &Tensor, act: FusedActivation) -> Result<Tensor> {
        let in_features = self.in_features();
        if xs.rank() == 0 || xs.dims()[xs.rank() - 1] != in_features {
            candle_core::bail!("linear `{}`: expected input (..., {in_features}), got {:?}", self.name, xs.dims())
        }
        let bias = self.bias.as_ref().map(Param::value).transpose()?;
        ember_kernels::linear(xs, &self.weight.value()?, bias.as_ref(), act)
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_with_activation(xs, FusedActivation::Identity)
    }
}
