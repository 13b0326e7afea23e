//! 2-D convolution layer.

use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};
use ember_kernels::{FusedActivation, Padding2d};

use crate::conv_weights::ConvWeights;
use crate::{ModuleTree, Param};

/// Configuration of [`Conv2d`] (PyTorch's `nn.Conv2d` arguments; `kernel` is the side of a
/// square window).
pub type Conv2dConfig = crate::conv_config::ConvConfig;

/// 2-D convolution with parameters `{prefix}.weight` `(c_out, c_in/groups, k, k)` and
/// `{prefix}.bias` `(c_out,)`, initialised as PyTorch does unless the config's
/// [`WeightInit`](crate::WeightInit) says otherwise.
///
/// # Shapes
/// - input: `(b, c_in, h, w)`
/// - output: `(b, c_out, h', w')` with `h' = (h + 2p - d(k-1) - 1) / s + 1` (`h' = h` with
///   same padding)
///
/// Grouped and depthwise convolutions (`groups = c_in`) are supported; f32/f64 CPU inputs run
/// on ember-kernels' im2col + GEMM and direct depthwise kernels.
#[derive(Debug, Clone, ModuleTree)]
#[module(kind = Conv2d)]
pub struct Conv2d {
    #[module(skip)]
    name: String,
    #[module(skip)]
    cfg: Conv2dConfig,
    weight: Param,
    bias: Option<Param>,
}

impl Conv2d {
    /// Reads or creates `{vb}.weight` and (if configured) `{vb}.bias`.
    pub fn new(cfg: &Conv2dConfig, vb: VarBuilder) -> Result<Self> {
        let ConvWeights { weight, bias } = ConvWeights::new("conv2d", cfg, &[cfg.kernel, cfg.kernel], &vb)?;
        Ok(Self { name: vb.prefix(), cfg: *cfg, weight, bias })
    }

    /// The layer's configuration.
    pub fn config(&self) -> &Conv2dConfig {
        &self.cfg
    }
}

impl Conv2d {
    /// The convolution followed by `act`, fused into one op (see
    /// [`ember_kernels::conv2d_with_activation`]).
    pub fn forward_with_activation(&self, xs: &Tensor, act: FusedActivation) -> Result<Tensor> {
        self.forward_fused(xs, act, None)
    }

    /// `pool(act(conv(xs)))` as one op (see [`ember_kernels::conv2d_activation_max_pool`]): the
    /// full-resolution activation never becomes a tensor. Equal to applying this layer, the
    /// activation and the [`MaxPool2d`](crate::MaxPool2d) in turn.
    pub fn forward_fused(&self, xs: &Tensor, act: FusedActivation, pool: Option<&crate::MaxPool2d>) -> Result<Tensor> {
        self.forward_fused_t(xs, act, pool, true)
    }

    /// [`Conv2d::forward_fused`] for training (`train = true`) or inference: in inference the
    /// fused pool records no argmax, which makes the forward pass cheaper (gradients through
    /// the output remain right; see [`ember_kernels::conv2d_activation_max_pool_t`]).
    pub fn forward_fused_t(
        &self,
        xs: &Tensor,
        act: FusedActivation,
        pool: Option<&crate::MaxPool2d>,
        train: bool,
    ) -> Result<Tensor> {
        let (weight, bias) = (self.weight.value()?, self.bias.as_ref().map(Param::value).transpose()?);
        self.run(xs, &weight, bias.as_ref(), act, pool, train)
    }

    /// `act(bn(conv(xs)))`. Where `bn` normalises with its running statistics (evaluation, or a
    /// frozen batch norm in training), it is an affine map per output channel and is folded into
    /// this convolution: weight `w·scale`, bias `b·scale + shift`, recomputed from the current
    /// parameters on every call (so nothing goes stale), and the whole is one op with the
    /// activation fused. Otherwise (batch statistics) the two layers run in turn. Gradients
    /// reach the convolution's and the batch norm's parameters either way.
    pub fn forward_with_batch_norm_t(
        &self,
        xs: &Tensor,
        bn: &crate::BatchNorm,
        act: FusedActivation,
        train: bool,
    ) -> Result<Tensor> {
        let Some((scale, shift)) = bn.running_affine(train)? else {
            return bn.forward_t_with_activation(
                &self.forward_fused_t(xs, FusedActivation::Identity, None, train)?,
                train,
                act,
            );
        };
        if scale.dim(0)? != self.cfg.c_out {
            candle_core::bail!(
                "conv2d `{}`: {} output channels, but the batch norm after it has {}",
                self.name,
                self.cfg.c_out,
                scale.dim(0)?
            )
        }
        let weight = self.weight.value()?.broadcast_mul(&scale.reshape((self.cfg.c_out, 1, 1, 1))?)?;
        let bias = match &self.bias {
            Some(b) => ((b.value()? * &scale)? + &shift)?,
            None => shift,
        };
        self.run(xs, &weight, Some(&bias), act, None, train)
    }

    /// The convolution with the given (possibly folded) weight and bias.
    fn run(
        &self,
        xs: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        act: FusedActivation,
        pool: Option<&crate::MaxPool2d>,
        train: bool,
    ) -> Result<Tensor> {
        let pool = pool.map(|p| p.params());
        match xs.dims() {
            [_, c, h, w] if *c == self.cfg.c_in => {
                let p = self.cfg.params;
                let reach = p.dilation * (self.cfg.kernel - 1) + 1;
                if !self.cfg.same_padding && (h + 2 * p.padding < reach || w + 2 * p.padding < reach) {
                    candle_core::bail!(
                        "conv2d `{}`: input {h}x{w} with padding {} is smaller than the {reach}x{reach} kernel reach",
                        self.name,
                        p.padding
                    )
                }
            }
            dims => candle_core::bail!(
                "conv2d `{}`: expected input (batch, {}, height, width), got {dims:?}",
                self.name,
                self.cfg.c_in
            ),
        }
        if self.cfg.same_padding {
            let (_, _, h, w) = xs.dims4()?;
            let p = self.cfg.params;
            let pad = Padding2d::same(h, w, self.cfg.kernel, self.cfg.kernel, p.stride, p.dilation);
            return ember_kernels::conv2d_padded_t(xs, weight, bias, p, pad, act, pool, train);
        }
        ember_kernels::conv2d_activation_max_pool_t(xs, weight, bias, self.cfg.params, act, pool, train)
    }
}

impl Module for Conv2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_with_activation(xs, FusedActivation::Identity)
    }
}
