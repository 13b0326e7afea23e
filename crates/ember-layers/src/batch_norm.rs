//! Batch normalisation over the channel dimension (PyTorch's `BatchNorm1d` and `BatchNorm2d`).

use candle_core::{Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};
use ember_kernels::init::Init;
use ember_kernels::{
    add_activate, batch_norm_eval, batch_norm_train, batch_norm_train_add, batch_norm_train_max_pool, BatchStats,
    FusedActivation,
};

use crate::weight_init::candle_init;
use crate::{Buffer, ModuleTree, Param};

/// Configuration for [`BatchNorm`] (PyTorch's defaults from [`BatchNormConfig::new`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormConfig {
    /// Number of channels `c`.
    pub num_features: usize,
    /// Added to the variance before the square root.
    pub eps: f64,
    /// Weight of the new batch statistic in the running average (PyTorch: 0.1).
    pub momentum: f64,
    /// Whether the layer has a learned scale `weight` and shift `bias`.
    pub affine: bool,
    /// Whether the layer keeps running statistics; without them it normalises with batch
    /// statistics in eval mode too.
    pub track_running_stats: bool,
}

impl BatchNormConfig {
    /// PyTorch's defaults: `eps = 1e-5`, `momentum = 0.1`, affine, tracking running stats.
    pub fn new(num_features: usize) -> Self {
        Self { num_features, eps: 1e-5, momentum: 0.1, affine: true, track_running_stats: true }
    }
}

/// Batch normalisation with parameters `{prefix}.weight`, `{prefix}.bias` (ones and zeros) and
/// buffers `{prefix}.running_mean`, `{prefix}.running_var` (zeros and ones), as PyTorch names them.
///
/// In train mode it normalises with the batch mean and biased variance over every dimension
/// but the channel one, and updates the running statistics in place:
/// `running = (1 - momentum) * running + momentum * batch`, with the *unbiased* variance.
/// In eval mode, or when [frozen](BatchNorm::set_frozen), it normalises with the running
/// statistics and leaves them untouched. PyTorch's `num_batches_tracked` is not kept (it only
/// matters for `momentum=None`); loaders may skip that key.
///
/// `BatchNorm1d` and `BatchNorm2d` are the same layer: the input rank decides. The arithmetic is
/// [`ember_kernels::batch_norm_train`] and [`ember_kernels::batch_norm_eval`] (one op each, one
/// backward pass; candle's ops for dtypes and devices without a kernel).
///
/// # Shapes
/// - input: `(b, c)`, `(b, c, l)` or `(b, c, h, w)`
/// - output: the input's shape
#[derive(Debug, Clone, ModuleTree)]
#[module(kind = BatchNorm)]
pub struct BatchNorm {
    #[module(skip)]
    name: String,
    #[module(skip)]
    cfg: BatchNormConfig,
    weight: Option<Param>,
    bias: Option<Param>,
    running_mean: Option<Buffer>,
    running_var: Option<Buffer>,
    #[module(skip)]
    frozen: bool,
}

/// PyTorch's `nn.BatchNorm1d`: [`BatchNorm`] on `(b, c)` or `(b, c, l)` inputs.
pub type BatchNorm1d = BatchNorm;
/// PyTorch's `nn.BatchNorm2d`: [`BatchNorm`] on `(b, c, h, w)` inputs.
pub type BatchNorm2d = BatchNorm;

impl BatchNorm {
    /// Reads or creates `{vb}.weight`, `{vb}.bias` (if affine) and `{vb}.running_mean`,
    /// `{vb}.running_var` (if tracking running statistics).
    pub fn new(cfg: &BatchNormConfig, vb: VarBuilder) -> Result<Self> {
        let c = cfg.num_features;
        if cfg.eps < 0.0 || !(0.0..=1.0).contains(&cfg.momentum) {
            candle_core::bail!("batch_norm `{}`: bad eps {} or momentum {}", vb.prefix(), cfg.eps, cfg.momentum)
        }
        let (weight, bias) = if cfg.affine {
            (
                Some(Param::new(vb.get_with_hints(c, "weight", candle_init(Init::ones()))?)),
                Some(Param::new(vb.get_with_hints(c, "bias", candle_init(Init::zeros()))?)),
            )
        } else {
            (None, None)
        };
        let (running_mean, running_var) = if cfg.track_running_stats {
            // A `Buffer` shares the storage of a tensor that already is a variable (as the
            // ParamStore's buffers are), so in-place updates reach the store.
            (
                Some(Buffer::new(&vb.get_with_hints(c, "running_mean", candle_init(Init::zeros()))?)?),
                Some(Buffer::new(&vb.get_with_hints(c, "running_var", candle_init(Init::ones()))?)?),
            )
        } else {
            (None, None)
        };
        Ok(Self { name: vb.prefix(), cfg: *cfg, weight, bias, running_mean, running_var, frozen: false })
    }

    /// Keeps the layer in eval behaviour (running statistics, no updates) even in train mode,
    /// e.g. while fine-tuning the rest of a network. Its `weight` and `bias` still receive
    /// gradients; leave them out of the optimizer to freeze them too.
    pub fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
    }

    /// Whether [`BatchNorm::set_frozen`] holds the layer in eval behaviour.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Current running mean, when tracked.
    pub fn running_mean(&self) -> Option<Tensor> {
        self.running_mean.as_ref().map(Buffer::value)
    }

    /// Current running (unbiased) variance, when tracked.
    pub fn running_var(&self) -> Option<Tensor> {
        self.running_var.as_ref().map(Buffer::value)
    }

    /// Whether a forward pass in this mode normalises with the running statistics (evaluation,
    /// or a frozen layer) rather than the batch's.
    pub fn uses_running_statistics(&self, train: bool) -> bool {
        self.running_mean.is_some() && self.running_var.is_some() && (self.frozen || !train)
    }

    /// The per-channel `(scale, shift)` with which this layer maps its input when it normalises
    /// with its running statistics (`train = false`, or frozen): `y = x·scale + shift`, with
    /// `scale = weight / sqrt(running_var + eps)` and `shift = bias - running_mean·scale`, as
    /// differentiable functions of the weight and bias. `None` when it would use batch
    /// statistics (training, or no running statistics kept).
    pub fn running_affine(&self, train: bool) -> Result<Option<(Tensor, Tensor)>> {
        let (Some(m), Some(v)) = (&self.running_mean, &self.running_var) else { return Ok(None) };
        if !self.uses_running_statistics(train) {
            return Ok(None);
        }
        let inv_std = (v.value() + self.cfg.eps)?.sqrt()?.recip()?;
        let scale = match &self.weight {
            Some(w) => (w.value()? * inv_std)?,
            None => inv_std,
        };
        let shifted = (m.value() * &scale)?.neg()?;
        let shift = match &self.bias {
            Some(b) => (b.value()? + shifted)?,
            None => shifted,
        };
        Ok(Some((scale, shift)))
    }

    /// The layer followed by `act`, fused into one op (see [`ember_kernels::batch_norm_train`]):
    /// the activation is applied while each channel is in cache and its derivative is read off
    /// the output in backward, so neither the normalised tensor nor its gradient is stored.
    /// Equal to `forward_t` followed by the activation.
    pub fn forward_t_with_activation(&self, xs: &Tensor, train: bool, act: FusedActivation) -> Result<Tensor> {
        self.forward_fused(xs, train, act, After::Nothing)
    }

    /// The end of a residual block, `act(bn(xs) + shortcut)`. With batch statistics (training)
    /// it is one op ([`ember_kernels::batch_norm_train_add`]): the sum is formed while each
    /// channel is in cache, so the normalised tensor is never stored, nor its gradient; with
    /// running statistics the batch norm and then the sum with its activation.
    pub fn forward_t_with_residual(
        &self,
        xs: &Tensor,
        shortcut: &Tensor,
        train: bool,
        act: FusedActivation,
    ) -> Result<Tensor> {
        if shortcut.dims() != xs.dims() {
            candle_core::bail!(
                "batch_norm `{}`: shortcut of shape {:?} for input {:?}",
                self.name,
                shortcut.dims(),
                xs.dims()
            )
        }
        self.forward_fused(xs, train, act, After::Residual(shortcut))
    }

    /// The layer followed by `act` and a max pool, `pool.forward(act(bn(xs)))` (ResNet's stem).
    /// With batch statistics (training) the three are one op
    /// ([`ember_kernels::batch_norm_train_max_pool`]): the full-resolution activation is pooled
    /// while in cache and never stored, nor its gradient. With running statistics the batch
    /// norm and activation run as one op and the pool after it.
    pub fn forward_t_with_activation_and_pool(
        &self,
        xs: &Tensor,
        train: bool,
        act: FusedActivation,
        pool: &crate::MaxPool2d,
    ) -> Result<Tensor> {
        if xs.rank() != 4 {
            candle_core::bail!(
                "batch_norm `{}` with max pool: expected input (batch, {}, height, width), got {:?}",
                self.name,
                self.cfg.num_features,
                xs.dims()
            )
        }
        self.forward_fused(xs, train, act, After::Pool(pool))
    }

    fn forward_fused(&self, xs: &Tensor, train: bool, act: FusedActivation, after: After<'_>) -> Result<Tensor> {
        let c = self.cfg.num_features;
        let dims = xs.dims().to_vec();
        if !(2..=4).contains(&dims.len()) || dims[1] != c {
            candle_core::bail!(
                "batch_norm `{}`: expected input (batch, {c}), (batch, {c}, length) or (batch, {c}, height, width), got {dims:?}",
                self.name
            )
        }
        let (b, n) = (dims[0], dims[2..].iter().product::<usize>());
        let weight = self.weight.as_ref().map(Param::value).transpose()?;
        let bias = self.bias.as_ref().map(Param::value).transpose()?;
        let (weight, bias, eps) = (weight.as_ref(), bias.as_ref(), self.cfg.eps);
        let y = match (&self.running_mean, &self.running_var) {
            (Some(m), Some(v)) if self.frozen || !train => match after {
                After::Nothing => batch_norm_eval(xs, &m.value(), &v.value(), weight, bias, eps, act)?,
                After::Pool(pool) => {
                    batch_norm_eval(xs, &m.value(), &v.value(), weight, bias, eps, act)?.apply(pool)?
                }
                After::Residual(shortcut) => {
                    let y = batch_norm_eval(xs, &m.value(), &v.value(), weight, bias, eps, FusedActivation::Identity)?;
                    add_activate(&y, shortcut, act)?
                }
            },
            _ => {
                let count = b * n;
                if count < 2 {
                    candle_core::bail!(
                        "batch_norm `{}`: expected more than 1 value per channel in train mode, got input {dims:?}",
                        self.name
                    )
                }
                let (y, BatchStats { mean, var }) = match after {
                    After::Nothing => batch_norm_train(xs, weight, bias, eps, act)?,
                    After::Pool(pool) => batch_norm_train_max_pool(xs, weight, bias, eps, act, pool.params())?,
                    After::Residual(shortcut) => batch_norm_train_add(xs, shortcut, weight, bias, eps, act)?,
                };
                if let (Some(rm), Some(rv)) = (&self.running_mean, &self.running_var) {
                    if train {
                        let m = self.cfg.momentum;
                        let unbiased = var.affine(count as f64 / (count - 1) as f64, 0.0)?;
                        let new_mean = (rm.value().affine(1.0 - m, 0.0)? + mean.affine(m, 0.0)?)?;
                        let new_var = (rv.value().affine(1.0 - m, 0.0)? + unbiased.affine(m, 0.0)?)?;
                        rm.set(&new_mean)?;
                        rv.set(&new_var)?;
                    }
                }
                y
            }
        };
        Ok(y)
    }
}

/// What a fused batch norm does after its activation's input: nothing, a max pool after the
/// activation, or a residual sum before it.
#[derive(Clone, Copy)]
enum After<'a> {
    Nothing,
    Pool(&'a crate::MaxPool2d),
    Residual(&'a Tensor),
}

impl ModuleT for BatchNorm {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_t_with_activation(xs, train, FusedActivation::Identity)
    }
}
