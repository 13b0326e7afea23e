//! Continual learning: one network trained on a sequence of tasks (class splits of one dataset),
//! scored on every task seen after each one, with four ways of training: naive fine-tuning,
//! rehearsal, EWC and LwF, in the class- and task-incremental settings.
//!
//! Every method trains each task through `ember_train::Learner` with a [`ContinualStep`], with
//! the same budget: `epochs_per_task` epochs of the task's data (plus, for rehearsal, the
//! replayed memory), batches of `batch_size`, Adam at a constant `lr`, a fresh optimizer state
//! per task.

mod ewc;
mod lwf;
mod metrics;
mod replay;
mod setting;
mod step;
mod tasks;

use std::sync::Arc;

use candle_core::{Device, Tensor};
use ember_data::{DataLoader, Dataset, Subset};
use ember_optim::{Adam, AdamConfig};
use ember_train::callback::OnEpoch;
use ember_train::{EpochReport, FitOptions, Learner};

pub use ewc::{fisher_diagonal, Ewc, EwcAnchor};
pub use lwf::lwf_loss;
pub use metrics::AccuracyMatrix;
pub use replay::ReplayBuffer;
pub use setting::{apply_masks, label_masks, Setting, MASKED};
pub use step::{ContinualStep, LwfTeacher};
pub use tasks::TaskSequence;

use crate::distill::DistillConfig;
use crate::pretrained::FineTuneModel;
use crate::{Error, Result};

/// How old tasks are protected while a new one trains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// Nothing: plain fine-tuning on each task in turn (the lower bound).
    Naive,
    /// A [`ReplayBuffer`] of `per_class` training images per class seen, mixed into every later
    /// task's training data, each memorised image repeated so that an old class appears about
    /// as often as a new one (class-balanced replay).
    Rehearsal {
        /// Images kept per class.
        per_class: usize,
    },
    /// The [`Ewc`] penalty of strength `lambda`, the Fisher estimated on `fisher_samples` of each
    /// finished task's training images ([`fisher_diagonal`]).
    Ewc {
        /// `λ`.
        lambda: f64,
        /// Examples per Fisher estimate.
        fisher_samples: usize,
    },
    /// [`lwf_loss`]: the old classes' outputs distilled from the model before the task.
    Lwf(DistillConfig),
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Method::Naive => f.write_str("naive"),
            Method::Rehearsal { per_class } => write!(f, "rehearsal ({per_class} images per class)"),
            Method::Ewc { lambda, fisher_samples } => {
                write!(f, "ewc (lambda {lambda}, {fisher_samples} Fisher samples)")
            }
            Method::Lwf(cfg) => write!(f, "lwf (T {}, alpha {})", cfg.temperature, cfg.alpha),
        }
    }
}

/// Settings of [`learn_continually`].
#[derive(Debug, Clone, PartialEq)]
pub struct ContinualConfig {
    /// How old tasks are protected.
    pub method: Method,
    /// Class- or task-incremental.
    pub setting: Setting,
    /// Passes over each task's training data.
    pub epochs_per_task: usize,
    /// Examples per mini-batch.
    pub batch_size: usize,
    /// Adam's (constant) learning rate.
    pub lr: f64,
    /// Seed of shuffling, the replay memory and the Fisher estimate (the model's initial
    /// weights come from its own `ParamStore` seed).
    pub seed: u64,
    /// Background threads building batches (0: on the training thread).
    pub workers: usize,
}

impl Default for ContinualConfig {
    /// Naive, class-incremental, 2 epochs per task, batches of 64, Adam at 1e-3, seed 0.
    fn default() -> Self {
        Self {
            method: Method::Naive,
            setting: Setting::ClassIncremental,
            epochs_per_task: 2,
            batch_size: 64,
            lr: 1e-3,
            seed: 0,
            workers: 0,
        }
    }
}

impl ContinualConfig {
    /// Fails naming the first setting that cannot train: no epochs, a batch size of 0, a
    /// learning rate that is not a positive number, a rehearsal memory of 0 images per class, a
    /// negative EWC `λ` or 0 Fisher samples, an LwF temperature that is not positive or an `α`
    /// outside `[0, 1]`.
    pub fn validate(&self) -> Result<()> {
        let invalid = |detail: String| Err(Error::invalid("continual learning", detail));
        if self.epochs_per_task == 0 {
            return invalid("epochs_per_task must be at least 1".into());
        }
        if self.batch_size == 0 {
            return invalid("batch_size must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return invalid(format!("lr must be a positive number, got {}", self.lr));
        }
        match self.method {
            Method::Naive => {}
            Method::Rehearsal { per_class } => {
                ReplayBuffer::new(per_class, 0)?;
            }
            Method::Ewc { lambda, fisher_samples } => {
                Ewc::new(lambda)?;
                if fisher_samples == 0 {
                    return invalid("ewc: fisher_samples must be at least 1".into());
                }
            }
            Method::Lwf(cfg) => cfg.validate().map_err(|e| match e {
                Error::Invalid { detail, .. } => Error::invalid("lwf", detail),
                e => e,
            })?,
        }
        Ok(())
    }
}

/// What [`learn_continually`] measured.
#[derive(Debug, Clone)]
pub struct ContinualReport {
    /// The tasks' classes, in order.
    pub tasks: Vec<Vec<u32>>,
    /// `R[i][j]`, test accuracy on task `j` after training task `i`.
    pub accuracy: AccuracyMatrix,
    /// Training examples per epoch of each task (the task's own plus replayed ones).
    pub train_examples: Vec<usize>,
    /// Test examples of each task.
    pub test_examples: Vec<usize>,
    /// The epochs of each task.
    pub history: Vec<Vec<EpochReport>>,
}

/// A loader of `data` feeding `model`: its preprocessing's normalisation (identity for the
/// MNIST recipes), in order.
fn loader(model: &FineTuneModel, data: Arc<dyn Dataset>, batch_size: usize, workers: usize) -> Result<DataLoader> {
    let c = model.options.input.0.clamp(1, 3);
    let p = &model.preprocessing;
    Ok(DataLoader::new(data, batch_size).with_workers(workers).with_normalization(&p.mean[..c], &p.std[..c])?)
}

/// A copy of `model` with its current weights (LwF's teacher), built as the same zoo model.
fn snapshot(model: &FineTuneModel) -> Result<FineTuneModel> {
    let dtype = model.store.vars().first().map_or(candle_core::DType::F32, |(_, v)| v.dtype());
    let copy =
        FineTuneModel::scratch_on(model.network.name(), &model.options, model.options.seed, model.device(), dtype)?;
    for (name, t) in model.store.state() {
        copy.store.assign(&name, &t)?;
    }
    Ok(copy)
}

/// The old classes' column groups LwF distils while task `current` trains: one group of every
/// old class (class-incremental), or one per old task (task-incremental).
fn old_groups(
    setting: Setting,
    tasks: &TaskSequence,
    current: usize,
    device: &Device,
) -> candle_core::Result<Vec<Tensor>> {
    if current == 0 {
        return Ok(Vec::new());
    }
    let groups = match setting {
        Setting::ClassIncremental => vec![tasks.seen(current - 1)],
        Setting::TaskIncremental => tasks.tasks()[..current].to_vec(),
    };
    groups.iter().map(|g| Tensor::new(g.as_slice(), device)).collect()
}

/// Trains `model` on `tasks` in order and scores it on every task so far after each one.
///
/// `train` and `test` are the whole dataset's splits (the task subsets are taken by label);
/// `model` must have one output per class of the data. After training task `i` (method and
/// setting of `cfg`), `R[i][j]` is the accuracy on task `j`'s test examples, predictions taken
/// among the classes the setting allows ([`label_masks`]). Then, depending on the method, the
/// memory observes task `i`'s training images, EWC estimates its Fisher information, or LwF keeps
/// a copy of the model as the next task's teacher. `on_epoch` sees `(task, report)` for every
/// epoch, `task` 0-based.
pub fn learn_continually(
    model: &FineTuneModel,
    train: &Arc<dyn Dataset>,
    test: &Arc<dyn Dataset>,
    tasks: &TaskSequence,
    cfg: &ContinualConfig,
    on_epoch: &mut dyn FnMut(usize, &EpochReport),
) -> Result<ContinualReport> {
    cfg.validate()?;
    if model.options.classes != tasks.classes() {
        return Err(Error::invalid(
            model.network.name(),
            format!(
                "the model has {} outputs but the data has {} classes; one head over every class is needed",
                model.options.classes,
                tasks.classes()
            ),
        ));
    }
    let train_sets = tasks.subsets(train, "training data")?;
    let test_sets = tasks.subsets(test, "test data")?;
    let mut memory = match cfg.method {
        Method::Rehearsal { per_class } => Some(ReplayBuffer::new(per_class, cfg.seed)?),
        _ => None,
    };
    let mut ewc = match cfg.method {
        Method::Ewc { lambda, .. } => Some(Ewc::new(lambda)?),
        _ => None,
    };
    let mut teacher: Option<FineTuneModel> = None;
    let mut report = ContinualReport {
        tasks: tasks.tasks().to_vec(),
        accuracy: AccuracyMatrix::default(),
        train_examples: Vec::new(),
        test_examples: test_sets.iter().map(|s| s.len()).collect(),
        history: Vec::new(),
    };
    for (t, task_train) in train_sets.iter().enumerate() {
        let masks = label_masks(cfg.setting, tasks, t)?.to_device(model.device())?;
        let mut indices = task_train.indices().to_vec();
        if let Some(memory) = &memory {
            // Class balance: a memorised image comes back about as often as an image of a new
            // class appears, so the few old images are not drowned by the new task's thousands.
            let per_new_class = task_train.len() as f64 / tasks.tasks()[t].len() as f64;
            let repeats = (per_new_class / memory.per_class() as f64).round().max(1.0) as usize;
            let kept = memory.indices();
            for _ in 0..repeats {
                indices.extend_from_slice(&kept);
            }
        }
        report.train_examples.push(indices.len());
        let data: Arc<dyn Dataset> = Arc::new(Subset::new(train.clone(), indices)?);
        let task_seed = cfg.seed.wrapping_add(t as u64);
        let train_loader = loader(model, data, cfg.batch_size, cfg.workers)?.with_shuffle(task_seed);
        let lwf = match (cfg.method, &teacher) {
            (Method::Lwf(distill), Some(previous)) => Some(LwfTeacher {
                model: previous,
                old: old_groups(cfg.setting, tasks, t, model.device())?,
                cfg: distill,
            }),
            _ => None,
        };
        let step = ContinualStep { model, store: &model.store, masks: masks.clone(), ewc: ewc.as_ref(), lwf };
        let mut opt = Adam::new(model.store.vars(), AdamConfig { lr: cfg.lr, ..AdamConfig::default() })?;
        let options = FitOptions { classes: tasks.classes(), ..FitOptions::new(cfg.epochs_per_task) };
        let history = Learner::with_step(step, &model.store, &mut opt)
            .with_callback(OnEpoch(|r: &EpochReport| on_epoch(t, r)))
            .fit(&train_loader, None, &options)?;
        report.history.push(history);

        if let Some(memory) = &mut memory {
            memory.observe_all(train.as_ref(), task_train.indices())?;
        }
        if let (Some(ewc), Method::Ewc { fisher_samples, .. }) = (&mut ewc, cfg.method) {
            let data: Arc<dyn Dataset> = Arc::new(task_train.clone());
            let sample = loader(model, data, cfg.batch_size, 0)?.with_shuffle(task_seed);
            ewc.push(fisher_diagonal(model, &model.store, &sample, &masks, fisher_samples, task_seed)?);
        }
        if let Method::Lwf(_) = cfg.method {
            teacher = Some(snapshot(model)?);
        }

        let scorer = ContinualStep { model, store: &model.store, masks, ewc: None, lwf: None };
        let mut row = Vec::with_capacity(t + 1);
        for task_test in &test_sets[..=t] {
            let data: Arc<dyn Dataset> = Arc::new(task_test.clone());
            let test_loader = loader(model, data, 256, cfg.workers)?;
            let eval = ember_train::evaluate_step(&scorer, &test_loader, tasks.classes(), model.device())?;
            row.push(eval.confusion.accuracy());
        }
        report.accuracy.push(row)?;
    }
    Ok(report)
}
