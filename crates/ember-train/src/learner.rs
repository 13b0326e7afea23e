//! The training loop: [`Learner`] (fit, evaluate, predict, resume) and the [`fit`] shortcut.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::ModuleT;
use ember_data::{DataLoader, ShardTail};
use ember_layers::loss::cross_entropy;
use ember_layers::ParamStore;
use ember_optim::{clip_grad_norm, Optimizer, OptimizerMeta, OptimizerState, Schedule};
use serde::{Deserialize, Serialize};

use crate::callback::{Callback, CallbackContext, Control, StepReport};
use crate::collective::Collective;
use crate::report::EpochReport;
use crate::{ConfusionMatrix, Error, Result};

/// When a schedule advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SchedulePer {
    /// Once per optimizer step (the schedule's step index is the global step).
    Batch,
    /// Once per epoch (the index is the 0-based epoch).
    Epoch,
}

/// How [`fit`] / [`Learner::fit`] trains.
pub struct FitOptions<'a> {
    /// Number of passes over the training data (in total, counting epochs before a resume).
    pub epochs: usize,
    /// Learning-rate schedule, if any.
    pub schedule: Option<&'a dyn Schedule>,
    /// When the schedule advances.
    pub schedule_per: SchedulePer,
    /// Clip the global gradient norm to this value before every step.
    pub clip_grad_norm: Option<f64>,
    /// Number of classes (for validation metrics); 0, the default, takes the training data's
    /// (`Dataset::classes`).
    pub classes: usize,
    /// Device batches are built on (the model's device).
    pub device: Device,
}

impl FitOptions<'_> {
    /// `epochs` epochs, no schedule, no clipping, the training data's classes, CPU.
    pub fn new(epochs: usize) -> Self {
        Self {
            epochs,
            schedule: None,
            schedule_per: SchedulePer::Batch,
            clip_grad_norm: None,
            classes: 0,
            device: Device::Cpu,
        }
    }
}

impl FitOptions<'_> {
    /// Fails naming the first setting that cannot work: a gradient clipping bound that is not a
    /// positive number (a negative one would reverse every step).
    pub fn validate(&self) -> Result<()> {
        if let Some(norm) = self.clip_grad_norm {
            if !(norm > 0.0 && norm.is_finite()) {
                return Err(Error::Invalid(format!(
                    "fit: the gradient-clipping norm must be a positive number, got {norm}"
                )));
            }
        }
        Ok(())
    }
}

impl<'a> FitOptions<'a> {
    /// Steps `schedule` every batch.
    pub fn with_schedule(mut self, schedule: &'a dyn Schedule) -> Self {
        self.schedule = Some(schedule);
        self
    }
}

/// Result of an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Predictions against labels.
    pub confusion: ConfusionMatrix,
}

/// The output of one [`TrainStep`].
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// The scalar loss to minimise.
    pub loss: Tensor,
    /// Class scores `(b, classes)`, for models whose accuracy and confusion matrix mean
    /// something; `None` for others (autoencoders, regressors).
    pub logits: Option<Tensor>,
}

/// What the [`Learner`] needs from a model: the loss of a batch (and optionally class scores),
/// in train or eval mode. Any `candle_nn::ModuleT` classifier gets one through [`Classifier`];
/// models with their own objective (a VAE's ELBO, a regression loss) implement it directly.
pub trait TrainStep {
    /// Loss (and logits) of `batch`; `train` selects train-mode behaviour (dropout, batch norm).
    fn step(&self, batch: &ember_data::Batch, train: bool) -> candle_core::Result<StepOutput>;
}

/// Any function from a batch and the mode to a [`StepOutput`] is a step: a model with its own
/// objective needs no type of its own (`|batch, train| ...` computing a VAE's ELBO).
impl<F> TrainStep for F
where
    F: Fn(&ember_data::Batch, bool) -> candle_core::Result<StepOutput>,
{
    fn step(&self, batch: &ember_data::Batch, train: bool) -> candle_core::Result<StepOutput> {
        self(batch, train)
    }
}

/// A `ModuleT` producing logits, trained with cross-entropy against the batch labels.
pub struct Classifier<'a>(pub &'a dyn ModuleT);

impl TrainStep for Classifier<'_> {
    fn step(&self, batch: &ember_data::Batch, train: bool) -> candle_core::Result<StepOutput> {
        let logits = self.0.forward_t(&batch.images, train)?;
        let loss = cross_entropy(&logits, &batch.labels)?;
        Ok(StepOutput { loss, logits: Some(logits) })
    }
}

/// The [`CallbackContext`] of a learner. A macro rather than a method so the context borrows only
/// the fields it reads, leaving `self.callbacks` free to be borrowed mutably beside it.
macro_rules! callback_context {
    ($learner:expr) => {
        CallbackContext {
            store: $learner.store,
            learning_rate: $learner.optimizer.learning_rate(),
            global_step: $learner.global_step,
            history: &$learner.history,
            run_dir: $learner.run_dir.as_deref(),
        }
    };
}

/// A logging callback (see [`Callback::essential`]) that failed and was turned off; training
/// went on without it.
#[derive(Debug)]
pub struct CallbackFailure {
    /// The callback's [`Callback::name`].
    pub callback: String,
    /// The 1-based epoch during which it failed.
    pub epoch: usize,
    /// What went wrong.
    pub error: Error,
    index: usize,
}

impl std::fmt::Display for CallbackFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed in epoch {} and was turned off: {}", self.callback, self.epoch, self.error)
    }
}

/// Runs `f` on every callback that has not failed. An essential callback's error is returned; a
/// logger's is recorded in `failures`, which turns the logger off.
fn each_callback<'c>(
    callbacks: &mut [Box<dyn Callback + 'c>],
    failures: &mut Vec<CallbackFailure>,
    epoch: usize,
    mut f: impl FnMut(&mut (dyn Callback + 'c)) -> Result<Control>,
) -> Result<Control> {
    let mut control = Control::Continue;
    for (index, cb) in callbacks.iter_mut().enumerate() {
        if failures.iter().any(|f| f.index == index) {
            continue;
        }
        match f(cb.as_mut()) {
            Ok(Control::Stop) => control = Control::Stop,
            Ok(Control::Continue) => {}
            Err(error) if !cb.essential() => {
                failures.push(CallbackFailure { callback: cb.name().to_string(), epoch, error, index })
            }
            Err(error) => return Err(error),
        }
    }
    Ok(control)
}

/// Name of the resume file inside a run directory.
pub const RESUME_FILE: &str = "resume.safetensors";

/// Trains a classifier (any `candle_nn::ModuleT` producing logits) with cross-entropy,
/// validates each epoch, runs callbacks, and — given a run directory — saves everything needed
/// to resume exactly after every epoch.
///
/// With [`Learner::with_collective`] the same loop trains one replica of a data-parallel group
/// (PyTorch's DDP); see there.
pub struct Learner<'a> {
    model: Box<dyn TrainStep + 'a>,
    store: &'a ParamStore,
    optimizer: &'a mut dyn Optimizer,
    callbacks: Vec<Box<dyn Callback + 'a>>,
    run_dir: Option<PathBuf>,
    history: Vec<EpochReport>,
    global_step: u64,
    failures: Vec<CallbackFailure>,
    collective: Option<Box<dyn Collective + 'a>>,
}

#[derive(Serialize, Deserialize)]
struct TrainerState {
    global_step: u64,
    history: Vec<EpochReport>,
    callbacks: BTreeMap<String, serde_json::Value>,
    optimizer_step: u64,
    optimizer_meta: OptimizerMeta,
}

impl<'a> Learner<'a> {
    /// A learner for the classifier `model` (cross-entropy on its logits), whose parameters
    /// live in `store`, trained by `optimizer`.
    pub fn new(model: &'a dyn ModuleT, store: &'a ParamStore, optimizer: &'a mut dyn Optimizer) -> Self {
        Self::with_step(Classifier(model), store, optimizer)
    }

    /// A learner for any model with its own [`TrainStep`] (its own loss).
    pub fn with_step(model: impl TrainStep + 'a, store: &'a ParamStore, optimizer: &'a mut dyn Optimizer) -> Self {
        Self {
            model: Box::new(model),
            store,
            optimizer,
            callbacks: Vec::new(),
            run_dir: None,
            history: Vec::new(),
            global_step: 0,
            failures: Vec::new(),
            collective: None,
        }
    }

    /// Makes this learner rank `member.rank()` of a data-parallel group of
    /// `member.world_size()` replicas, each with its own copy of the model and optimizer (built
    /// the same way), each driven by its own thread or process. [`Learner::fit`] then:
    ///
    /// - starts from rank 0's parameters and buffers (broadcast), after checking that every rank
    ///   has the same number of batches, epochs and completed epochs;
    /// - iterates this rank's shard of the training data ([`DataLoader::shard`]: the same seeded
    ///   permutation on every rank, padded to a multiple of the world size) with the loader's
    ///   batch size *per rank*;
    /// - after every backward pass replaces each trainable parameter's gradient by its mean over
    ///   the ranks (parameters without a gradient on any rank keep none), so that `N` replicas
    ///   with batch `b` step like one process with batch `N·b` when the loss is a mean over the
    ///   batch and no layer depends on the batch; gradient clipping sees the averaged gradients,
    ///   and every rank steps its own optimizer with them;
    /// - reports the training loss and accuracy over all ranks' examples, and the batch loss
    ///   callbacks see is the mean over the ranks;
    /// - validates every rank on its share of the validation data (each example once,
    ///   [`ShardTail::Uneven`]) and sums the losses and confusion matrices over the ranks, so
    ///   every rank reports the numbers one process would;
    /// - runs the callbacks, and writes the resume file, on rank 0 only; its decision to stop
    ///   is broadcast so that every rank stops after the same epoch, and at the end every rank
    ///   takes rank 0's parameters (a callback may have restored the best ones).
    ///
    /// Batch normalisation normalises with each replica's own batch statistics (not
    /// synchronised across ranks, unlike PyTorch's `SyncBatchNorm`); the running statistics of
    /// rank 0 are broadcast to every rank after each epoch's training, so validation, the
    /// checkpoints and a resume all use rank 0's.
    ///
    /// An error on one rank ([`Collective::abort`]) ends every other rank with
    /// [`Error::ReplicaFailed`]; a non-finite loss is seen by every rank at the same step (the
    /// loss is averaged with the gradients) and ends each with [`Error::NonFiniteLoss`].
    /// To resume, every rank calls [`Learner::resume`] on the run directory rank 0 wrote.
    pub fn with_collective(mut self, member: impl Collective + 'a) -> Self {
        self.collective = Some(Box::new(member));
        self
    }

    /// This learner's `(rank, world size)` when it is a data-parallel replica.
    pub fn replica(&self) -> Option<(usize, usize)> {
        self.collective.as_ref().map(|c| (c.rank(), c.world_size()))
    }

    /// Whether this learner runs callbacks and writes files: always, unless it is a
    /// data-parallel replica other than rank 0.
    fn leads(&self) -> bool {
        self.collective.as_ref().is_none_or(|c| c.rank() == 0)
    }

    /// Adds a callback; callbacks run in the order added.
    pub fn with_callback(mut self, callback: impl Callback + 'a) -> Self {
        self.callbacks.push(Box::new(callback));
        self
    }

    /// Saves `resume.safetensors` (model, optimizer, trainer and callback state) in `dir`
    /// after every epoch, atomically.
    pub fn with_run_dir(mut self, dir: &Path) -> Self {
        self.run_dir = Some(dir.to_path_buf());
        self
    }

    /// Epochs completed so far (after a resume: those of the earlier run).
    pub fn history(&self) -> &[EpochReport] {
        &self.history
    }

    /// The logging callbacks that failed and were turned off, in order (see
    /// [`Callback::essential`]).
    pub fn failures(&self) -> &[CallbackFailure] {
        &self.failures
    }

    /// Restores the state saved in `dir/resume.safetensors`: parameters and buffers, optimizer
    /// state, step count, history and callback state. The next [`Learner::fit`] continues with
    /// the epoch after the last completed one.
    pub fn resume(&mut self, dir: &Path) -> Result<()> {
        let path = dir.join(RESUME_FILE);
        let bytes =
            std::fs::read(&path).map_err(|source| Error::Io(ember_io::IoError { path: path.clone(), source }))?;
        let unreadable =
            |reason: String| Error::Checkpoint(ember_io::Error::UnreadableCheckpoint { path: path.clone(), reason });
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| unreadable(e.to_string()))?;
        let text = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("trainer"))
            .ok_or_else(|| unreadable("no trainer state in its metadata".into()))?;
        let state: TrainerState = serde_json::from_str(text).map_err(|e| unreadable(e.to_string()))?;
        let tensors = crate::checkpoint::read_tensors(&path, self.store.device())?;
        let (mut model, mut optim) = (BTreeMap::new(), BTreeMap::new());
        for (k, t) in tensors {
            if let Some(name) = k.strip_prefix("model.") {
                model.insert(name.to_string(), t);
            } else if let Some(name) = k.strip_prefix("optim.") {
                optim.insert(name.to_string(), t);
            }
        }
        crate::checkpoint::load_map(self.store, model, &path)?;
        self.optimizer
            .load_state(OptimizerState { buffers: optim, step: state.optimizer_step, meta: state.optimizer_meta })
            .map_err(|e| unreadable(format!("optimizer state: {e}")))?;
        for cb in &mut self.callbacks {
            if let Some(s) = state.callbacks.get(cb.name()) {
                cb.load_state(s)?;
            }
        }
        self.global_step = state.global_step;
        self.history = state.history;
        Ok(())
    }

    fn save_resume(&self, dir: &Path) -> Result<()> {
        let optim = self.optimizer.state().map_err(|e| unreadable_resume_file(dir, e))?;
        let mut tensors: Vec<(String, Tensor)> =
            self.store.state().into_iter().map(|(k, t)| (format!("model.{k}"), t)).collect();
        tensors.extend(optim.buffers.into_iter().map(|(k, t)| (format!("optim.{k}"), t)));
        let state = TrainerState {
            global_step: self.global_step,
            history: self.history.clone(),
            callbacks: self.callbacks.iter().map(|c| (c.name().to_string(), c.state())).collect(),
            optimizer_step: optim.step,
            optimizer_meta: optim.meta,
        };
        let text = serde_json::to_string(&state).map_err(|e| unreadable_resume_file(dir, e))?;
        crate::checkpoint::save_tensors_with_metadata(
            &tensors,
            [("trainer".to_string(), text)].into(),
            &dir.join(RESUME_FILE),
        )
    }

    /// Trains until `options.epochs` epochs are complete (continuing after a resume), or a
    /// callback stops it. Returns the reports of every epoch, earlier runs' included.
    ///
    /// A data-parallel replica ([`Learner::with_collective`]) takes the whole training and
    /// validation loaders (or its own shards of them) and shards them itself.
    pub fn fit(
        &mut self,
        train: &DataLoader,
        val: Option<&DataLoader>,
        options: &FitOptions,
    ) -> Result<Vec<EpochReport>> {
        let result = self.fit_inner(train, val, options);
        if let (Err(error), Some(collective)) = (&result, self.collective.as_mut()) {
            // The other ranks would otherwise wait for this one in their next collective.
            collective.abort(&error.to_string());
        }
        result
    }

    fn fit_inner(
        &mut self,
        train: &DataLoader,
        val: Option<&DataLoader>,
        options: &FitOptions,
    ) -> Result<Vec<EpochReport>> {
        options.validate()?;
        if let Some(val) = val {
            val.check("validation data")?;
        }
        let (train, val) = match self.replica() {
            Some((rank, world)) => (
                shard_of(train, rank, world, ShardTail::Pad, "training data")?,
                val.map(|v| shard_of(v, rank, world, ShardTail::Uneven, "validation data")).transpose()?,
            ),
            None => (train.clone(), val.cloned()),
        };
        let (train, val) = (&train, val.as_ref());
        train.check("training data")?;
        let data_classes = train.dataset().classes();
        let classes = match options.classes {
            0 => data_classes,
            c if c < data_classes => {
                return Err(Error::Invalid(format!(
                    "fit: {c} classes given but the training data has {data_classes} (labels up to {})",
                    data_classes - 1
                )))
            }
            c => c,
        };
        if classes == 0 {
            return Err(Error::Invalid("fit: the training data has no classes".into()));
        }
        let device = &options.device;
        let batches = train.num_batches();
        let start = self.history.len();
        let params: Vec<_> = self.store.vars().into_iter().map(|(_, v)| v).collect();
        if let Some(collective) = self.collective.as_deref_mut() {
            let plan = [batches, options.epochs, start, self.global_step as usize, params.len()];
            agree_on_plan(collective, &plan, device)?;
            broadcast_state(collective, self.store, self.store.state())?;
        }
        let leads = self.leads();
        for epoch in start..options.epochs {
            let started = Instant::now();
            if let (Some(s), SchedulePer::Epoch) = (options.schedule, options.schedule_per) {
                s.apply(epoch, self.optimizer);
            }
            let (mut loss_sum, mut seen, mut correct) = (0f64, 0usize, 0u64);
            for (b, batch) in train.epoch(epoch as u64, device).enumerate() {
                let batch = batch?;
                if let (Some(s), SchedulePer::Batch) = (options.schedule, options.schedule_per) {
                    s.apply(self.global_step as usize, self.optimizer);
                }
                let StepOutput { loss, logits } = self.model.step(&batch, true)?;
                let local_loss = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                let diverged = |loss: f64| Error::NonFiniteLoss {
                    epoch: epoch + 1,
                    batch: Some(b),
                    loss,
                    learning_rate: self.optimizer.learning_rate(),
                };
                // A replica checks the loss averaged over the ranks, after the all-reduce, so
                // that every rank sees a divergence at the same step.
                if self.collective.is_none() && !local_loss.is_finite() {
                    return Err(diverged(local_loss));
                }
                let mut grads = loss.backward()?;
                let loss_value = match self.collective.as_deref_mut() {
                    Some(collective) => all_reduce_gradients(collective, &mut grads, &params, &loss)?,
                    None => local_loss,
                };
                if !loss_value.is_finite() {
                    return Err(diverged(loss_value));
                }
                if let Some(max_norm) = options.clip_grad_norm {
                    clip_grad_norm(&mut grads, &params, max_norm)?;
                }
                self.optimizer.step(&grads)?;
                self.global_step += 1;
                let n = batch.labels.dims1()?;
                loss_sum += local_loss * n as f64;
                seen += n;
                if let Some(logits) = &logits {
                    correct += count_correct(logits, &batch.labels)?;
                }
                if leads {
                    let step = StepReport {
                        epoch: epoch + 1,
                        batch: b,
                        batches,
                        global_step: self.global_step,
                        loss: loss_value,
                    };
                    let ctx = callback_context!(self);
                    each_callback(&mut self.callbacks, &mut self.failures, epoch + 1, |cb| {
                        cb.on_batch_end(&ctx, &step).map(|()| Control::Continue)
                    })?;
                }
            }
            if let Some(collective) = self.collective.as_deref_mut() {
                let totals = Tensor::new(&[loss_sum, seen as f64, correct as f64], device)?;
                let totals = collective.all_reduce_sum(&[totals])?[0].to_vec1::<f64>()?;
                (loss_sum, seen, correct) = (totals[0], totals[1] as usize, totals[2] as u64);
                // Running statistics (batch norm) are rank 0's from here on: see `with_collective`.
                broadcast_state(collective, self.store, self.store.buffers())?;
            }
            let evaluation = match (val, self.collective.as_deref_mut()) {
                (Some(v), Some(collective)) => {
                    Some(evaluate_replicated(self.model.as_ref(), v, classes, device, collective)?)
                }
                (Some(v), None) => Some(evaluate_step(self.model.as_ref(), v, classes, device)?),
                (None, _) => None,
            };
            // The divergence guard's second half: the last step's update is seen only by the
            // validation loss, or, without validation data, by the parameters themselves.
            self.ensure_not_diverged(epoch + 1, evaluation.as_ref().map(|e| e.loss))?;
            let report = EpochReport {
                epoch: epoch + 1,
                epochs: options.epochs,
                train_loss: loss_sum / seen.max(1) as f64,
                train_accuracy: correct as f64 / seen.max(1) as f64,
                val_loss: evaluation.as_ref().map(|e| e.loss),
                val_accuracy: evaluation.as_ref().filter(|e| e.confusion.total() > 0).map(|e| e.confusion.accuracy()),
                learning_rate: self.optimizer.learning_rate(),
                seconds: started.elapsed().as_secs_f64(),
                val_confusion: evaluation.map(|e| e.confusion),
            };
            self.history.push(report.clone());
            let mut stop = false;
            if leads {
                let ctx = callback_context!(self);
                stop = each_callback(&mut self.callbacks, &mut self.failures, epoch + 1, |cb| {
                    cb.on_epoch_end(&ctx, &report)
                })? == Control::Stop;
                // Committed last, so everything the callbacks wrote for this epoch (best/last
                // weights, logs) is in place before the resume file says the epoch is done.
                if let Some(dir) = &self.run_dir {
                    self.save_resume(dir)?;
                }
            }
            if let Some(collective) = self.collective.as_deref_mut() {
                // Every rank stops after the epoch rank 0's callbacks chose.
                let flag = Tensor::new(&[u32::from(stop)], device)?;
                stop = collective.broadcast(&[flag])?[0].to_vec1::<u32>()?[0] != 0;
            }
            if stop {
                break;
            }
        }
        if leads {
            let ctx = callback_context!(self);
            let last = self.history.len();
            each_callback(&mut self.callbacks, &mut self.failures, last, |cb| {
                cb.on_train_end(&ctx).map(|()| Control::Continue)
            })?;
        }
        if let Some(collective) = self.collective.as_deref_mut() {
            // A callback of rank 0 may have changed its weights (restoring the best epoch's).
            broadcast_state(collective, self.store, self.store.state())?;
        }
        Ok(self.history.clone())
    }

    /// Fails when the validation loss (if any) or, without one, any parameter is not finite.
    fn ensure_not_diverged(&self, epoch: usize, val_loss: Option<f64>) -> Result<()> {
        let learning_rate = self.optimizer.learning_rate();
        match val_loss {
            Some(loss) if !loss.is_finite() => Err(Error::NonFiniteLoss { epoch, batch: None, loss, learning_rate }),
            Some(_) => Ok(()),
            None => {
                for (name, var) in self.store.vars() {
                    if !ember_kernels::all_finite(var.as_tensor())? {
                        return Err(Error::NonFiniteParameter { epoch, name, learning_rate });
                    }
                }
                Ok(())
            }
        }
    }

    /// Evaluates the model (eval mode) on `data`.
    pub fn evaluate(&self, data: &DataLoader, classes: usize) -> Result<Evaluation> {
        evaluate_step(self.model.as_ref(), data, classes, self.store.device())
    }

    /// The model's logits `(n, classes)` for every example of `data`, in order (eval mode).
    pub fn predict(&self, data: &DataLoader) -> Result<Tensor> {
        let _no_grad = ember_kernels::no_grad();
        let mut parts = Vec::new();
        for batch in data.epoch(0, self.store.device()) {
            let out = self.model.step(&batch?, false)?;
            parts.push(out.logits.ok_or_else(|| Error::Invalid("predict: the model produces no logits".into()))?);
        }
        if parts.is_empty() {
            return Err(Error::Invalid("predict: the data loader yielded no batch".into()));
        }
        Ok(Tensor::cat(&parts, 0)?)
    }
}

/// Trains `model` with `optimizer` on `train` for `options.epochs` epochs (see [`Learner`]);
/// `on_epoch` sees every report as it happens.
pub fn fit(
    model: &dyn ModuleT,
    optimizer: &mut dyn Optimizer,
    train: &DataLoader,
    val: Option<&DataLoader>,
    options: &FitOptions,
    on_epoch: impl FnMut(&EpochReport),
) -> Result<Vec<EpochReport>> {
    // A store is only needed for clipping, resuming and callbacks; an empty one suffices here
    // unless clipping is asked for, which needs the parameters.
    let store = ParamStore::new(0, &options.device);
    if options.clip_grad_norm.is_some() {
        return Err(Error::Invalid("fit: gradient clipping needs the parameters; use Learner".into()));
    }
    let mut learner = Learner::new(model, &store, optimizer).with_callback(crate::callback::OnEpoch(on_epoch));
    learner.fit(train, val, options)
}

/// `loader` as rank `rank`'s shard out of `world`: sharded here with `tail`, or as given when
/// the caller sharded it for this very rank.
fn shard_of(loader: &DataLoader, rank: usize, world: usize, tail: ShardTail, what: &str) -> Result<DataLoader> {
    match loader.sharding() {
        None => Ok(loader.shard_with(rank, world, tail)?),
        Some(s) if (s.rank, s.world) == (rank, world) => Ok(loader.clone()),
        Some(s) => Err(Error::Invalid(format!(
            "fit: the {what} is rank {} of {}'s shard, but this learner is rank {rank} of {world}",
            s.rank, s.world
        ))),
    }
}

/// Fails on every rank unless all ranks agree with rank 0 on `plan` (batches per epoch, epochs,
/// completed epochs, steps, parameters): ranks that disagree would wait for each other forever.
fn agree_on_plan(collective: &mut dyn Collective, plan: &[usize], device: &Device) -> Result<()> {
    let mine: Vec<f64> = plan.iter().map(|&v| v as f64).collect();
    let leader = collective.broadcast(&[Tensor::new(mine.as_slice(), device)?])?[0].to_vec1::<f64>()?;
    let differs = Tensor::new(&[f64::from(u8::from(leader != mine))], device)?;
    let disagreeing = collective.all_reduce_sum(&[differs])?[0].to_vec1::<f64>()?[0];
    if disagreeing > 0.0 {
        return Err(Error::Collective(format!(
            "{disagreeing} rank(s) disagree with rank 0 on [batches per epoch, epochs, completed epochs, steps, \
             parameters]: rank 0 has {leader:?}, rank {} has {mine:?}",
            collective.rank()
        )));
    }
    Ok(())
}

/// Overwrites this rank's `tensors` (named entries of `store`) with rank 0's.
fn broadcast_state(collective: &mut dyn Collective, store: &ParamStore, tensors: Vec<(String, Tensor)>) -> Result<()> {
    if tensors.is_empty() {
        return Ok(());
    }
    let (names, values): (Vec<String>, Vec<Tensor>) = tensors.into_iter().unzip();
    let leader = collective.broadcast(&values)?;
    if collective.rank() != 0 {
        for (name, value) in names.iter().zip(&leader) {
            store.assign(name, value)?;
        }
    }
    Ok(())
}

/// Replaces every gradient of `params` in `grads` by its mean over the ranks, and returns the
/// mean of the ranks' `loss`. One collective call carries the gradients, the loss and which
/// parameters have a gradient at all; a parameter with none on any rank keeps none, so the
/// optimizer leaves it alone as it would in one process.
fn all_reduce_gradients(
    collective: &mut dyn Collective,
    grads: &mut GradStore,
    params: &[Var],
    loss: &Tensor,
) -> Result<f64> {
    let device = loss.device();
    let mut tensors = Vec::with_capacity(params.len() + 2);
    let mut present = Vec::with_capacity(params.len());
    for p in params {
        match grads.get(p.as_tensor()) {
            Some(g) => {
                tensors.push(g.clone());
                present.push(1f64);
            }
            None => {
                tensors.push(p.as_tensor().zeros_like()?);
                present.push(0f64);
            }
        }
    }
    tensors.push(loss.detach().to_dtype(DType::F64)?.reshape(1)?);
    tensors.push(Tensor::new(present.as_slice(), device)?);
    let mut sums = collective.all_reduce_sum(&tensors)?;
    let world = collective.world_size() as f64;
    let present = sums.pop().map(|t| t.to_vec1::<f64>()).transpose()?.unwrap_or_default();
    let loss_sum = sums.pop().map(|t| t.to_vec1::<f64>()).transpose()?.unwrap_or_default();
    for ((p, sum), present) in params.iter().zip(sums).zip(present) {
        if present > 0.0 {
            grads.insert(p.as_tensor(), (sum / world)?);
        }
    }
    Ok(loss_sum.first().copied().unwrap_or(f64::NAN) / world)
}

/// A replica's share of a validation pass (`data` is its shard), summed over the ranks: every
/// rank gets the loss and confusion matrix of the whole validation set.
fn evaluate_replicated(
    model: &dyn TrainStep,
    data: &DataLoader,
    classes: usize,
    device: &Device,
    collective: &mut dyn Collective,
) -> Result<Evaluation> {
    let (loss_sum, seen, confusion) = if data.is_empty() {
        (0.0, 0, ConfusionMatrix::new(classes))
    } else {
        evaluation_sums(model, data, classes, device)?
    };
    let mut totals = vec![loss_sum, seen as f64];
    totals.extend(confusion.counts().iter().map(|&c| c as f64));
    let totals = collective.all_reduce_sum(&[Tensor::new(totals.as_slice(), device)?])?[0].to_vec1::<f64>()?;
    let confusion = ConfusionMatrix::from_counts(classes, totals[2..].iter().map(|&c| c as u64).collect())?;
    Ok(Evaluation { loss: totals[0] / totals[1].max(1.0), confusion })
}

fn count_correct(logits: &Tensor, labels: &Tensor) -> Result<u64> {
    let predicted = logits.argmax(1)?;
    Ok(predicted.eq(labels)?.to_dtype(DType::U32)?.sum_all()?.to_scalar::<u32>()? as u64)
}

/// Runs `model` (on the CPU) in eval mode over `data` and compares its predictions with the
/// labels.
pub fn evaluate(model: &dyn ModuleT, data: &DataLoader, classes: usize) -> Result<Evaluation> {
    evaluate_on(model, data, classes, &Device::Cpu)
}

/// [`evaluate`] with batches built on `device`.
pub fn evaluate_on(model: &dyn ModuleT, data: &DataLoader, classes: usize, device: &Device) -> Result<Evaluation> {
    evaluate_step(&Classifier(model), data, classes, device)
}

/// Mean loss of `model` (eval mode) over `data` and, when it produces logits, its confusion
/// matrix.
pub fn evaluate_step(model: &dyn TrainStep, data: &DataLoader, classes: usize, device: &Device) -> Result<Evaluation> {
    data.check("evaluation data")?;
    let (loss_sum, seen, confusion) = evaluation_sums(model, data, classes, device)?;
    Ok(Evaluation { loss: loss_sum / seen.max(1) as f64, confusion })
}

/// The summed loss, the number of examples and the confusion matrix of a pass over `data`.
fn evaluation_sums(
    model: &dyn TrainStep,
    data: &DataLoader,
    classes: usize,
    device: &Device,
) -> Result<(f64, usize, ConfusionMatrix)> {
    // No gradient graph: each activation is freed once the next layer has read it.
    let _no_grad = ember_kernels::no_grad();
    let mut confusion = ConfusionMatrix::new(classes);
    let (mut loss_sum, mut seen) = (0f64, 0usize);
    for batch in data.epoch(0, device) {
        let batch = batch?;
        let out = model.step(&batch, false)?;
        let n = batch.labels.dims1()?;
        loss_sum += out.loss.to_dtype(DType::F64)?.to_scalar::<f64>()? * n as f64;
        seen += n;
        if let Some(logits) = out.logits {
            let predicted = logits.argmax(1)?.to_vec1::<u32>()?;
            let labels = batch.labels.to_vec1::<u32>()?;
            for (t, p) in labels.into_iter().zip(predicted) {
                confusion.add(t as usize, p as usize);
            }
        }
    }
    Ok((loss_sum, seen, confusion))
}

/// The logits `(n, classes)` of `model` (eval mode) for every example of `data`, in order.
pub fn predict(model: &dyn ModuleT, data: &DataLoader, device: &Device) -> Result<Tensor> {
    let mut parts = Vec::new();
    for batch in data.epoch(0, device) {
        parts.push(model.forward_t(&batch?.images, false)?);
    }
    if parts.is_empty() {
        return Err(Error::Invalid("predict: the data loader yielded no batch".into()));
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// The error for a resume file in `dir` whose content does not parse.
fn unreadable_resume_file(dir: &Path, e: impl std::fmt::Display) -> Error {
    Error::Checkpoint(ember_io::Error::UnreadableCheckpoint { path: dir.join(RESUME_FILE), reason: e.to_string() })
}
