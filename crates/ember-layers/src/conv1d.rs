//! 1-D convolution layer.

use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};
use ember_kernels::Conv2dParams;

use crate::conv_weights::{same_padding, ConvWeights};
use crate::{ModuleTree, Param};

/// Configuration of [`Conv1d`] (PyTorch's `nn.Conv1d` arguments; `kernel` is the window's
/// length).
pub type Conv1dConfig = crate::conv_config::ConvConfig;

/// 1-D convolution with parameters `{prefix}.weight` `(c_out, c_in/groups, k)` and
/// `{prefix}.bias` `(c_out,)`, initialised as PyTorch does.
///
/// # Shapes
/// - input: `(b, c_in, l)`
/// - output: `(b, c_out, (l + 2p - d(k-1) - 1) / s + 1)` (`l` with same padding)
#[derive(Debug, Clone, ModuleTree)]
#[module(kind = Conv1d)]
pub struct Conv1d {
    #[module(skip)]
    name: String,
    #[module(skip)]
    cfg: Conv1dConfig,
    weight: Param,
    bias: Option<Param>,
}

impl Conv1d {
    /// Reads or creates `{vb}.weight` and (if configured) `{vb}.bias`.
    pub fn new(cfg: &Conv1dConfig, vb: VarBuilder) -> Result<Self> {
        let ConvWeights { weight, bias } = ConvWeights::new("conv1d", cfg, &[cfg.kernel], &vb)?;
        Ok(Self { name: vb.prefix(), cfg: *cfg, weight, bias })
    }
}

impl Module for Conv1d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let p = self.cfg.params;
        match xs.dims() {
            [_, c, l] if *c == self.cfg.c_in => {
                let reach = p.dilation * (self.cfg.kernel - 1) + 1;
                if !self.cfg.same_padding && l + 2 * p.padding < reach {
                    candle_core::bail!(
                        "conv1d `{}`: input length {l} with padding {} is shorter than the kernel reach {reach}",
                        self.name,
                        p.padding
                    )
                }
            }
            dims => candle_core::bail!(
                "conv1d `{}`: expected input (batch, {}, length), got {dims:?}",
                self.name,
                self.cfg.c_in
            ),
        }
        let (weight, bias) = (self.weight.value()?, self.bias.as_ref().map(Param::value).transpose()?);
        if self.cfg.same_padding {
            let (lo, hi) = same_padding(xs.dim(2)?, self.cfg.kernel, p.stride, p.dilation);
            let xs = xs.pad_with_zeros(2, lo, hi)?;
            return ember_kernels::conv1d(&xs, &weight, bias.as_ref(), Conv2dParams { padding: 0, ..p });
        }
        ember_kernels::conv1d(xs, &weight, bias.as_ref(), p)
    }
}
