//! What every convolution layer does when it is built: check its channel split and padding
//! mode, then read or create its weight and bias under PyTorch's names and initialisation.

use candle_core::Result;
use candle_nn::VarBuilder;
use ember_kernels::Padding2d;

use crate::conv_config::ConvConfig;
use crate::weight_init::candle_init;
use crate::Param;

/// The weight `(c_out, c_in / groups, *kernel)` and the optional bias `(c_out,)` of a
/// convolution layer called `layer` (`conv1d`, `conv2d`), read from or created in `vb` with
/// `init`'s distributions. Fails, naming the layer, when the channels do not split into
/// `params.groups` groups.
pub(crate) struct ConvWeights {
    pub(crate) weight: Param,
    pub(crate) bias: Option<Param>,
}

impl ConvWeights {
    /// `kernel`: the window's dimensions (`[k]` in 1-D, `[k, k]` in 2-D).
    pub(crate) fn new(layer: &str, cfg: &ConvConfig, kernel: &[usize], vb: &VarBuilder) -> Result<Self> {
        let ConvConfig { c_in, c_out, params, .. } = *cfg;
        let groups = params.groups;
        if groups == 0 || !c_in.is_multiple_of(groups) || !c_out.is_multiple_of(groups) {
            candle_core::bail!(
                "{layer} `{}`: {c_in} in / {c_out} out channels do not split into {groups} groups",
                vb.prefix()
            )
        }
        let area: usize = kernel.iter().product();
        let (fan_in, fan_out) = (c_in / groups * area, c_out / groups * area);
        let dims: Vec<usize> = [c_out, c_in / groups].into_iter().chain(kernel.iter().copied()).collect();
        let weight = vb.get_with_hints(dims, "weight", candle_init(cfg.init.weight(fan_in, fan_out)))?;
        let bias_init = candle_init(cfg.init.bias(fan_in));
        let bias = if cfg.bias { Some(vb.get_with_hints(c_out, "bias", bias_init)?) } else { None };
        Ok(Self { weight: Param::new(weight), bias: bias.map(Param::new) })
    }
}

/// "Same" padding of one axis of `size` elements: the padding before and after for a kernel of
/// `kernel` taps `dilation` apart (see [`Padding2d::same`]).
pub(crate) fn same_padding(size: usize, kernel: usize, stride: usize, dilation: usize) -> (usize, usize) {
    let pad = Padding2d::same(size, 1, kernel, 1, stride, dilation);
    (pad.top, pad.bottom)
}
