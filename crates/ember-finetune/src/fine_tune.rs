//! Transfer-learning recipes: training with frozen parts, the linear probe (optionally on cached
//! features), and fastai's one-call `fine_tune` (head first, then everything with
//! discriminative learning rates and a one-cycle schedule).

use candle_core::{DType, Tensor};
use ember_data::DataLoader;
use ember_layers::loss::cross_entropy;
use ember_optim::{Adam, AdamConfig, OneCycle, Optimizer, ParamGroup, Schedule};
use ember_train::{EpochReport, FitOptions};
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::freeze::{discriminative_rates, freeze_batch_norms, param_groups};
use crate::lora::LoraModel;
use crate::pretrained::FineTuneModel;
use crate::{Error, Result};

/// Settings of [`fine_tune`], [`linear_probe`] and [`train_with_frozen`].
#[derive(Debug, Clone, PartialEq)]
pub struct FineTuneConfig {
    /// Epochs of the first phase: the head alone, backbone frozen (batch norms on running
    /// statistics).
    pub head_epochs: usize,
    /// Epochs of the second phase: everything, discriminative rates (0: stop after the head).
    pub epochs: usize,
    /// Peak (one-cycle) learning rate of the head phase.
    pub head_lr: f64,
    /// Peak learning rate of the last layer group in the second phase.
    pub lr: f64,
    /// The first layer group learns `lr / lr_ratio` (fastai's `slice(lr / 100, lr)`).
    pub lr_ratio: f64,
    /// Number of layer groups in the second phase (the head is one).
    pub layer_groups: usize,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Head phase on features computed once (no augmentation, far cheaper) instead of a full
    /// forward pass every step.
    pub cache_features: bool,
    /// Hold every batch norm on its running statistics in the second phase too (their scale
    /// and shift still train). With few images and small batches this keeps the features the
    /// head was fitted to and avoids the train/eval gap of batch statistics.
    pub frozen_batch_norms: bool,
    /// Seed of the head phase's shuffling (cached features).
    pub seed: u64,
}

impl FineTuneConfig {
    /// Fails naming the first setting that cannot train: learning rates and the rate ratio must
    /// be positive numbers (a ratio of 0 makes the first group's rate infinite), the weight decay
    /// a non-negative one, and there must be at least one layer group.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(Error::invalid("fine-tune settings", format!("{name} must be a positive number, got {v}")))
            }
        };
        positive("head_lr", self.head_lr)?;
        positive("lr", self.lr)?;
        positive("lr_ratio", self.lr_ratio)?;
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(Error::invalid(
                "fine-tune settings",
                format!("weight_decay must be a non-negative number, got {}", self.weight_decay),
            ));
        }
        if self.layer_groups == 0 {
            return Err(Error::invalid("fine-tune settings", "layer_groups must be at least 1"));
        }
        Ok(())
    }
}

impl Default for FineTuneConfig {
    /// 1 head epoch at 1e-3 (fastai's `freeze_epochs=1`), 5 full epochs at 1e-3 with groups
    /// from 1e-5, AdamW 0.01, cached features.
    fn default() -> Self {
        Self {
            head_epochs: 1,
            epochs: 5,
            head_lr: 1e-3,
            lr: 1e-3,
            lr_ratio: 100.0,
            layer_groups: 3,
            weight_decay: 1e-2,
            cache_features: true,
            frozen_batch_norms: false,
            seed: 0,
        }
    }
}

/// Loss and accuracy of one epoch of the head phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Training accuracy.
    pub accuracy: f64,
}

/// What [`fine_tune`] did.
#[derive(Debug, Clone, Default)]
pub struct FineTuneReport {
    /// The head phase's epochs (cached features), if that path was taken.
    pub head: Vec<ProbeEpoch>,
    /// The head phase's epochs without caching, then the full phase's.
    pub epochs: Vec<EpochReport>,
}

fn adamw(groups: Vec<ParamGroup>, lr: f64, weight_decay: f64) -> Result<Adam> {
    let cfg = AdamConfig { lr, weight_decay, ..AdamConfig::adamw() };
    Ok(Adam::with_groups(groups, cfg)?)
}

fn fit_options<'a>(model: &FineTuneModel, epochs: usize, schedule: &'a dyn Schedule) -> FitOptions<'a> {
    fit_options_for(model.options.classes, model.device(), epochs, schedule)
}

fn fit_options_for<'a>(
    classes: usize,
    device: &candle_core::Device,
    epochs: usize,
    schedule: &'a dyn Schedule,
) -> FitOptions<'a> {
    FitOptions { classes, device: device.clone(), ..FitOptions::new(epochs).with_schedule(schedule) }
}

/// Trains `model` for `epochs` epochs (AdamW, one-cycle peaking at `lr`) with every parameter
/// matching a glob of `frozen` left untouched: those parameters are in a frozen optimizer group
/// and the batch norms they belong to stay on their running statistics, so they end
/// bit-identical. `on_epoch` sees each report.
#[allow(clippy::too_many_arguments)]
pub fn train_with_frozen(
    model: &mut FineTuneModel,
    frozen: &[String],
    train: &DataLoader,
    val: Option<&DataLoader>,
    epochs: usize,
    lr: f64,
    weight_decay: f64,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<Vec<EpochReport>> {
    // Frozen in the tree too: their values enter the forward pass detached, so backpropagation
    // computes no gradient for them and stops at the first trainable layer (with a frozen
    // backbone, only the head's backward runs). Their batch norms hold their statistics.
    ember_layers::freeze(&mut model.network, frozen);
    let mut opt = adamw(param_groups(&model.store, frozen, &[]), lr, weight_decay)?;
    let schedule = OneCycle::new(lr, (epochs * train.num_batches()).max(1));
    let options = fit_options(model, epochs, &schedule);
    let history = ember_train::fit(&*model, &mut opt, train, val, &options, |r| on_epoch(r));
    ember_layers::unfreeze(&mut model.network, frozen);
    history.map_err(Into::into)
}

/// The features of every example of `data` (eval mode, in order, through the loader's
/// [`DataLoader::evaluation_view`]) and their labels.
pub fn cached_features(model: &FineTuneModel, data: &DataLoader) -> Result<(Tensor, Tensor)> {
    // The loader's images without augmentation, but with its colour, size and normalisation.
    let plain = data.evaluation_view();
    // Features are data for the head: no gradient graph through the frozen backbone.
    let _no_grad = ember_kernels::no_grad();
    let (mut feats, mut labels) = (Vec::new(), Vec::new());
    for batch in plain.epoch(0, model.device()) {
        let batch = batch?;
        feats.push(model.features(&batch.images)?);
        labels.push(batch.labels);
    }
    if feats.is_empty() {
        return Err(Error::invalid("linear probe", "the training data is empty"));
    }
    Ok((Tensor::cat(&feats, 0)?, Tensor::cat(&labels, 0)?))
}

/// A linear probe: only the head trains, on the backbone's frozen features. With
/// `cfg.cache_features` the features are computed once and the head trains on them directly
/// (AdamW, one-cycle at `cfg.head_lr`, `cfg.head_epochs` epochs, batches of the loader's size);
/// otherwise it is [`train_with_frozen`] with everything but the head frozen.
pub fn linear_probe(
    model: &mut FineTuneModel,
    train: &DataLoader,
    val: Option<&DataLoader>,
    cfg: &FineTuneConfig,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<FineTuneReport> {
    cfg.validate()?;
    let mut report = FineTuneReport::default();
    // Features can be cached only where the forward pass reports the layer feeding the head.
    if !cfg.cache_features || !model.head.from_forward {
        let frozen = everything_but_head(model);
        report.epochs =
            train_with_frozen(model, &frozen, train, val, cfg.head_epochs, cfg.head_lr, cfg.weight_decay, on_epoch)?;
        return Ok(report);
    }
    let (feats, labels) = cached_features(model, train)?;
    let head = &model.head.head;
    let (w, b) = match (model.store.get(&format!("{head}.weight")), model.store.get(&format!("{head}.bias"))) {
        (Some(w), Some(b)) if w.dims().len() == 2 => (w, b),
        _ => return Err(Error::invalid(head.clone(), "the head is not a linear layer with weight and bias")),
    };
    let params = vec![(format!("{head}.weight"), w.clone()), (format!("{head}.bias"), b.clone())];
    let mut opt = adamw(vec![ParamGroup::all(params)], cfg.head_lr, cfg.weight_decay)?;
    let n = feats.dim(0)?;
    let batch = train.num_batches().max(1);
    let batch_size = n.div_ceil(batch);
    let schedule = OneCycle::new(cfg.head_lr, (cfg.head_epochs * batch).max(1));
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let mut step = 0;
    for epoch in 0..cfg.head_epochs {
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.shuffle(&mut rng);
        let (mut loss_sum, mut correct) = (0f64, 0f64);
        for chunk in order.chunks(batch_size) {
            schedule.apply(step, &mut opt);
            step += 1;
            let idx = Tensor::new(chunk, feats.device())?;
            let (x, y) = (feats.index_select(&idx, 0)?, labels.index_select(&idx, 0)?);
            let logits = x.matmul(&w.as_tensor().t()?)?.broadcast_add(b.as_tensor())?;
            let loss = cross_entropy(&logits, &y)?;
            opt.step(&loss.backward()?)?;
            loss_sum += loss.to_dtype(DType::F64)?.to_scalar::<f64>()? * chunk.len() as f64;
            correct += logits.argmax(1)?.eq(&y)?.to_dtype(DType::U32)?.sum_all()?.to_scalar::<u32>()? as f64;
        }
        report.head.push(ProbeEpoch { epoch: epoch + 1, loss: loss_sum / n as f64, accuracy: correct / n as f64 });
    }
    Ok(report)
}

/// Re-estimates every batch norm's running statistics from `data` with the current weights:
/// `passes` forward passes in train mode (no optimizer step; frozen batch norms are released
/// first). With a small momentum (EfficientNet-Lite's TF-style 0.01) and few training steps,
/// the running averages still carry the statistics of early, very different weights, and an
/// eval-mode network can collapse to one class; this is the remedy (torch's
/// `swa_utils.update_bn` does the same).
pub fn recalibrate_batch_norms(model: &mut FineTuneModel, data: &DataLoader, passes: usize) -> Result<()> {
    freeze_batch_norms(&mut model.network, &[]);
    for pass in 0..passes {
        for batch in data.epoch(pass as u64, model.device()) {
            let batch = batch?;
            model.logits(&batch.images, true)?.detach();
        }
    }
    Ok(())
}

/// Glob patterns freezing every parameter but the head's.
pub fn everything_but_head(model: &FineTuneModel) -> Vec<String> {
    let head = format!("{}.", model.head.head);
    model.store.names().into_iter().filter(|n| !n.starts_with(&head)).collect()
}

/// fastai's `fine_tune`: [`linear_probe`] for `cfg.head_epochs` epochs (backbone frozen), then
/// everything unfrozen for `cfg.epochs` epochs with AdamW, discriminative learning rates
/// ([`discriminative_rates`]: `cfg.layer_groups` groups from `cfg.lr / cfg.lr_ratio` to
/// `cfg.lr`) and a one-cycle schedule. `val` is evaluated after every full epoch.
pub fn fine_tune(
    model: &mut FineTuneModel,
    train: &DataLoader,
    val: Option<&DataLoader>,
    cfg: &FineTuneConfig,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<FineTuneReport> {
    cfg.validate()?;
    let mut report =
        if cfg.head_epochs > 0 { linear_probe(model, train, None, cfg, on_epoch)? } else { FineTuneReport::default() };
    if cfg.epochs == 0 {
        return Ok(report);
    }
    let all_batch_norms = if cfg.frozen_batch_norms { vec!["*".to_string()] } else { Vec::new() };
    freeze_batch_norms(&mut model.network, &all_batch_norms);
    let rates = discriminative_rates(&model.head, &model.store, cfg.layer_groups, cfg.lr, cfg.lr_ratio);
    let mut opt = adamw(param_groups(&model.store, &[], &rates), cfg.lr, cfg.weight_decay)?;
    let schedule = OneCycle::new(cfg.lr, (cfg.epochs * train.num_batches()).max(1));
    let options = fit_options(model, cfg.epochs, &schedule);
    report.epochs.extend(ember_train::fit(&*model, &mut opt, train, val, &options, |r| on_epoch(r))?);
    freeze_batch_norms(&mut model.network, &[]);
    Ok(report)
}

/// Trains `lora`'s adapters (and its `train_also` parameters, such as a new head) for
/// `cfg.epochs` epochs: AdamW with `cfg.weight_decay`, one-cycle peaking at `cfg.lr`, the
/// recipe of `ember finetune --mode lora`. The base stays frozen and bit-identical; `val` is
/// evaluated after every epoch.
pub fn train_lora(
    lora: &LoraModel,
    train: &DataLoader,
    val: Option<&DataLoader>,
    cfg: &FineTuneConfig,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<Vec<EpochReport>> {
    cfg.validate()?;
    let mut opt = adamw(vec![ParamGroup::all(lora.trainable())], cfg.lr, cfg.weight_decay)?;
    let schedule = OneCycle::new(cfg.lr, (cfg.epochs * train.num_batches()).max(1));
    let base = lora.base();
    let options = fit_options_for(base.options.classes, base.device(), cfg.epochs, &schedule);
    Ok(ember_train::fit(lora, &mut opt, train, val, &options, |r| on_epoch(r))?)
}
