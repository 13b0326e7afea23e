//! Data-parallel training of replicas on threads of this process: [`fit_replicated`] (what
//! `--devices N` runs) and the lower-level [`run_replicated`]; and of one replica of a group of
//! processes: [`fit_replica`].
//!
//! Every replica is a [`Learner`] made a member of a group with [`Learner::with_collective`]:
//! of an [`InProcessGroup`] on threads, of a [`TcpCollective`](crate::TcpCollective) or an NCCL
//! member across processes.

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use candle_nn::ModuleT;
use ember_data::DataLoader;
use ember_layers::ParamStore;
use ember_optim::{Optimizer, Schedule};

use crate::callback::Callback;
use crate::collective::{Collective, InProcessGroup, InProcessMember};
use crate::learner::{Classifier, FitOptions, Learner, TrainStep};
use crate::{EpochReport, Error, Result};

/// Everything one replica owns: its model, parameters, optimizer, schedule and options, and the
/// callbacks, run directory and resume choice that matter on rank 0 (the others run no callback
/// and write nothing). Built on the replica's own thread by the closure given to
/// [`fit_replicated`], so none of it needs to be `Send`.
pub struct Replica {
    step: Box<dyn TrainStep>,
    store: ParamStore,
    optimizer: Box<dyn Optimizer>,
    options: FitOptions<'static>,
    schedule: Option<Box<dyn Schedule>>,
    callbacks: Vec<Box<dyn Callback>>,
    run_dir: Option<PathBuf>,
    resume: bool,
}

/// A classifier the replica owns (the [`Classifier`] step borrows its model).
struct OwnedClassifier(Box<dyn ModuleT>);

impl TrainStep for OwnedClassifier {
    fn step(&self, batch: &ember_data::Batch, train: bool) -> candle_core::Result<crate::StepOutput> {
        Classifier(self.0.as_ref()).step(batch, train)
    }
}

impl Replica {
    /// A replica training `step` (its own loss), whose parameters live in `store`, with
    /// `optimizer` and `options` (give the schedule with [`Replica::with_schedule`]).
    pub fn new(
        step: impl TrainStep + 'static,
        store: ParamStore,
        optimizer: impl Optimizer + 'static,
        options: FitOptions<'static>,
    ) -> Self {
        Self {
            step: Box::new(step),
            store,
            optimizer: Box::new(optimizer),
            options,
            schedule: None,
            callbacks: Vec::new(),
            run_dir: None,
            resume: false,
        }
    }

    /// A replica of the classifier `model` (cross-entropy on its logits).
    pub fn classifier(
        model: Box<dyn ModuleT>,
        store: ParamStore,
        optimizer: impl Optimizer + 'static,
        options: FitOptions<'static>,
    ) -> Self {
        Self::new(OwnedClassifier(model), store, optimizer, options)
    }

    /// Steps `schedule` as `options.schedule_per` says (it replaces `options.schedule`).
    pub fn with_schedule(mut self, schedule: impl Schedule + 'static) -> Self {
        self.schedule = Some(Box::new(schedule));
        self
    }

    /// Adds a callback (run on rank 0 only).
    pub fn with_callback(mut self, callback: impl Callback + 'static) -> Self {
        self.callbacks.push(Box::new(callback));
        self
    }

    /// The run directory: rank 0 writes its resume file there after every epoch.
    pub fn with_run_dir(mut self, dir: &Path) -> Self {
        self.run_dir = Some(dir.to_path_buf());
        self
    }

    /// Whether to restore the state saved in the run directory before training (every rank
    /// reads rank 0's resume file).
    pub fn resuming(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }
}

/// What one replica ended with.
#[derive(Debug)]
pub struct ReplicaOutcome {
    /// Its rank.
    pub rank: usize,
    /// Every epoch's report, earlier runs' included (the same numbers on every rank).
    pub history: Vec<EpochReport>,
    /// Its final parameters and buffers, sorted by name (the same on every rank).
    pub state: Vec<(String, Tensor)>,
    /// The logging callbacks that failed and were turned off (rank 0's; see
    /// [`crate::CallbackFailure`]), as messages.
    pub callback_failures: Vec<String>,
}

/// Trains `world` replicas on as many threads, data-parallel (see [`Learner::with_collective`]):
/// `build(rank)` makes each replica on its own thread, every replica shards `train` and `val`
/// itself, and the outcomes come back in rank order.
///
/// Build every replica the same way (same model, optimizer and options); their initial
/// parameters may differ, since rank 0's are broadcast before training. When a rank fails, every
/// rank stops and the error returned is the first rank's own error (not the
/// [`Error::ReplicaFailed`] of the ranks that stopped because of it).
pub fn fit_replicated<F>(
    world: usize,
    train: &DataLoader,
    val: Option<&DataLoader>,
    build: F,
) -> Result<Vec<ReplicaOutcome>>
where
    F: Fn(usize) -> Result<Replica> + Sync,
{
    run_replicated(world, |member| {
        let rank = member.rank();
        fit_replica(member, build(rank)?, train, val)
    })
}

/// Trains one replica as a member of a group, data-parallel (see [`Learner::with_collective`]):
/// what every rank of a multi-process group runs, with its own collective
/// ([`TcpCollective`](crate::TcpCollective), an NCCL member), and what [`fit_replicated`] runs
/// on each of its threads. `train` and `val` are the whole data; the replica takes its shard.
pub fn fit_replica(
    member: impl Collective,
    replica: Replica,
    train: &DataLoader,
    val: Option<&DataLoader>,
) -> Result<ReplicaOutcome> {
    let rank = member.rank();
    let Replica { step, store, mut optimizer, options, schedule, callbacks, run_dir, resume } = replica;
    let options = FitOptions { schedule: schedule.as_deref().or(options.schedule), ..options };
    let mut learner = Learner::with_step(BoxedStep(step), &store, optimizer.as_mut()).with_collective(member);
    for callback in callbacks {
        learner = learner.with_callback(BoxedCallback(callback));
    }
    if let Some(dir) = &run_dir {
        learner = learner.with_run_dir(dir);
        if resume {
            learner.resume(dir)?;
        }
    } else if resume {
        return Err(Error::Invalid("fit_replica: resuming needs a run directory".into()));
    }
    let history = learner.fit(train, val, &options)?;
    let callback_failures = learner.failures().iter().map(ToString::to_string).collect();
    Ok(ReplicaOutcome { rank, history, state: store.state(), callback_failures })
}

/// Runs `replica(member)` for every member of a new [`InProcessGroup`] of `world` ranks, each on
/// its own thread, and returns the results in rank order. When any rank fails the error
/// returned is the first rank's own (its failure ended the others with
/// [`Error::ReplicaFailed`]); a panicking rank is reported as a failure of that rank.
pub fn run_replicated<T, F>(world: usize, replica: F) -> Result<Vec<T>>
where
    T: Send,
    F: Fn(InProcessMember) -> Result<T> + Sync,
{
    let members = InProcessGroup::new(world)?;
    let results: Vec<Result<T>> = std::thread::scope(|scope| {
        let replica = &replica;
        let handles: Vec<_> = members
            .into_iter()
            .map(|member| {
                std::thread::Builder::new()
                    .name(format!("replica-{}", member.rank()))
                    .spawn_scoped(scope, move || replica(member))
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(rank, handle)| match handle {
                Ok(handle) => handle.join().unwrap_or_else(|panic| {
                    let reason = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    Err(Error::ReplicaFailed { rank, reason: format!("panicked: {reason}") })
                }),
                Err(source) => Err(Error::Collective(format!("cannot start the thread of rank {rank}: {source}"))),
            })
            .collect()
    });
    let mut outcomes = Vec::with_capacity(world);
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(outcome) => outcomes.push(outcome),
            Err(error) => errors.push(error),
        }
    }
    // The root cause: a rank's own error rather than the "another rank failed" of the others.
    let root = errors.iter().position(|e| !matches!(e, Error::ReplicaFailed { .. })).unwrap_or(0);
    match errors.into_iter().nth(root) {
        Some(error) => Err(error),
        None => Ok(outcomes),
    }
}

/// A boxed step as a step (a blanket impl for boxes would overlap the one for closures).
struct BoxedStep(Box<dyn TrainStep>);

impl TrainStep for BoxedStep {
    fn step(&self, batch: &ember_data::Batch, train: bool) -> candle_core::Result<crate::StepOutput> {
        self.0.step(batch, train)
    }
}

/// A boxed callback as a callback (the learner boxes what it is given).
struct BoxedCallback(Box<dyn Callback>);

impl Callback for BoxedCallback {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn on_batch_end(&mut self, ctx: &crate::CallbackContext, step: &crate::StepReport) -> Result<()> {
        self.0.on_batch_end(ctx, step)
    }

    fn on_epoch_end(&mut self, ctx: &crate::CallbackContext, report: &EpochReport) -> Result<crate::Control> {
        self.0.on_epoch_end(ctx, report)
    }

    fn on_train_end(&mut self, ctx: &crate::CallbackContext) -> Result<()> {
        self.0.on_train_end(ctx)
    }

    fn essential(&self) -> bool {
        self.0.essential()
    }

    fn state(&self) -> serde_json::Value {
        self.0.state()
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        self.0.load_state(state)
    }
}
