//! Transposed 2-D convolution layer (a.k.a. "deconvolution").

use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};
use ember_kernels::init::Init;
use ember_kernels::ConvTranspose2dParams;

use crate::weight_init::candle_init;
use crate::{ModuleTree, Param};

/// Configuration for [`ConvTranspose2d`] (PyTorch's `nn.ConvTranspose2d`, one group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvTranspose2dConfig {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Padding, output padding, stride and dilation.
    pub params: ConvTranspose2dParams,
    /// Whether the layer adds a learned per-channel bias.
    pub bias: bool,
}

impl ConvTranspose2dConfig {
    /// `c_in -> c_out` with a `kernel x kernel` window, stride 1, no padding, with bias.
    pub fn new(c_in: usize, c_out: usize, kernel: usize) -> Self {
        Self { c_in, c_out, kernel, params: ConvTranspose2dParams::default(), bias: true }
    }
}

/// Transposed convolution with parameters `{prefix}.weight` `(c_in, c_out, k, k)` and
/// `{prefix}.bias` `(c_out,)`, initialised as PyTorch does (fan-in `c_out * k * k`).
///
/// # Shapes
/// - input: `(b, c_in, h, w)`
/// - output: `(b, c_out, (h - 1)s - 2p + d(k - 1) + output_padding + 1, ...)`
#[derive(Debug, Clone, ModuleTree)]
#[module(kind = ConvTranspose2d)]
pub struct ConvTranspose2d {
    #[module(skip)]
    name: String,
    #[module(skip)]
    cfg: ConvTranspose2dConfig,
    weight: Param,
    bias: Option<Param>,
}

impl ConvTranspose2d {
    /// Reads or creates `{vb}.weight` and (if configured) `{vb}.bias`.
    pub fn new(cfg: &ConvTranspose2dConfig, vb: VarBuilder) -> Result<Self> {
        let init = candle_init(Init::pytorch_default(cfg.c_out * cfg.kernel * cfg.kernel));
        let weight = vb.get_with_hints((cfg.c_in, cfg.c_out, cfg.kernel, cfg.kernel), "weight", init)?;
        let bias = if cfg.bias { Some(vb.get_with_hints(cfg.c_out, "bias", init)?) } else { None };
        Ok(Self { name: vb.prefix(), cfg: *cfg, weight: Param::new(weight), bias: bias.map(Param::new) })
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match xs.dims() {
            [_, c, _, _] if *c == self.cfg.c_in => {}
            dims => candle_core::bail!(
                "conv_transpose2d `{}`: expected input (batch, {}, height, width), got {dims:?}",
                self.name,
                self.cfg.c_in
            ),
        }
        let bias = self.bias.as_ref().map(Param::value).transpose()?;
        ember_kernels::conv_transpose2d(xs, &self.weight.value()?, bias.as_ref(), self.cfg.params)
    }
}
