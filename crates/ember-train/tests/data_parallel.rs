//! Data-parallel training: N replicas with batch b step exactly like one process with batch
//! N·b, resume bit for bit, write files from rank 0 only, and fail together.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use candle_core::{DType, Device, Tensor};
use candle_nn::ModuleT;
use ember_data::{mnist_sample, Batch, DataLoader, Split};
use ember_layers::loss::cross_entropy;
use ember_layers::ParamStore;
use ember_optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use ember_train::{
    fit_replicated, run_replicated, Callback, CallbackContext, Collective, Control, CsvLogger, EpochReport, Error,
    FitOptions, InProcessGroup, Learner, Mode, ModelCheckpoint, Replica, StepOutput, StepReport, TrainStep,
};

/// 240 training digits (a multiple of 2·8 and 3·8, so every large batch is the union of the
/// replicas' batches) and 91 validation digits (a multiple of neither 2 nor 3: the ranks'
/// validation shares are uneven, and no digit may count twice).
fn data(batch: usize) -> (DataLoader, DataLoader) {
    let train = mnist_sample(Split::Train).unwrap().select(&(0..240).collect::<Vec<_>>()).unwrap();
    let val = mnist_sample(Split::Test).unwrap().select(&(0..91).collect::<Vec<_>>()).unwrap();
    (DataLoader::new(Arc::new(train), batch).with_shuffle(17), DataLoader::new(Arc::new(val), 32))
}

/// A zoo classifier in f64 (the loader's f32 images converted on the way in).
struct F64Classifier(Box<dyn ModuleT>);

impl TrainStep for F64Classifier {
    fn step(&self, batch: &Batch, train: bool) -> candle_core::Result<StepOutput> {
        let logits = self.0.forward_t(&batch.images.to_dtype(DType::F64)?, train)?;
        let loss = cross_entropy(&logits, &batch.labels)?;
        Ok(StepOutput { loss, logits: Some(logits) })
    }
}

#[derive(Clone, Copy, Debug)]
enum Opt {
    SgdMomentum,
    Adam,
}

fn model(name: &str, seed: u64) -> (F64Classifier, ParamStore) {
    let store = ParamStore::new(seed, &Device::Cpu);
    let model = ember_zoo::build(name, store.var_builder(DType::F64)).unwrap();
    (F64Classifier(model), store)
}

fn optimizer(opt: Opt, store: &ParamStore) -> Box<dyn Optimizer> {
    match opt {
        Opt::SgdMomentum => {
            Box::new(Sgd::new(store.vars(), SgdConfig { lr: 0.05, momentum: 0.9, ..SgdConfig::default() }).unwrap())
        }
        Opt::Adam => Box::new(Adam::new(store.vars(), AdamConfig { lr: 2e-3, ..AdamConfig::default() }).unwrap()),
    }
}

/// Every parameter, concatenated in name order.
fn flat(store: &ParamStore) -> Vec<f64> {
    store.tensors().iter().flat_map(|(_, t)| t.flatten_all().unwrap().to_vec1::<f64>().unwrap()).collect()
}

/// Records the parameters after every optimizer step.
struct Recorder(Arc<Mutex<Vec<Vec<f64>>>>);

impl Callback for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }

    fn on_batch_end(&mut self, ctx: &CallbackContext, _step: &StepReport) -> ember_train::Result<()> {
        self.0.lock().unwrap().push(flat(ctx.store));
        Ok(())
    }
}

/// An optimizer that is a box is an optimizer (for `Replica::new`).
struct BoxedOptimizer(Box<dyn Optimizer>);

impl Optimizer for BoxedOptimizer {
    fn step(&mut self, grads: &candle_core::backprop::GradStore) -> candle_core::Result<()> {
        self.0.step(grads)
    }
    fn learning_rate(&self) -> f64 {
        self.0.learning_rate()
    }
    fn set_learning_rate(&mut self, lr: f64) {
        self.0.set_learning_rate(lr)
    }
    fn set_momentum(&mut self, momentum: f64) {
        self.0.set_momentum(momentum)
    }
    fn state(&self) -> ember_optim::Result<ember_optim::OptimizerState> {
        self.0.state()
    }
    fn load_state(&mut self, state: ember_optim::OptimizerState) -> ember_optim::Result<()> {
        self.0.load_state(state)
    }
}

fn options(epochs: usize, clip: Option<f64>) -> FitOptions<'static> {
    FitOptions { clip_grad_norm: clip, ..FitOptions::new(epochs) }
}

struct Run {
    steps: Vec<Vec<f64>>,
    history: Vec<EpochReport>,
}

/// One process, batch `batch`.
fn single(name: &str, opt: Opt, batch: usize, epochs: usize, clip: Option<f64>) -> Run {
    let (train, val) = data(batch);
    let (step, store) = model(name, 7);
    let mut optim = optimizer(opt, &store);
    let steps = Arc::new(Mutex::new(Vec::new()));
    let history = Learner::with_step(step, &store, optim.as_mut())
        .with_callback(Recorder(steps.clone()))
        .fit(&train, Some(&val), &options(epochs, clip))
        .unwrap();
    let steps = steps.lock().unwrap().clone();
    Run { steps, history }
}

/// `world` replicas on threads, batch `batch` each. Ranks other than 0 start from other
/// weights: rank 0's are broadcast.
fn replicated(name: &str, opt: Opt, world: usize, batch: usize, epochs: usize, clip: Option<f64>) -> Run {
    let (train, val) = data(batch);
    let steps = Arc::new(Mutex::new(Vec::new()));
    let outcomes = fit_replicated(world, &train, Some(&val), |rank| {
        let (step, store) = model(name, 7 + rank as u64);
        let optim = BoxedOptimizer(optimizer(opt, &store));
        let replica = Replica::new(step, store, optim, options(epochs, clip));
        Ok(if rank == 0 { replica.with_callback(Recorder(steps.clone())) } else { replica })
    })
    .unwrap();
    assert_eq!(outcomes.len(), world);
    for o in &outcomes[1..] {
        assert_eq!(o.state.len(), outcomes[0].state.len());
        for ((na, a), (nb, b)) in outcomes[0].state.iter().zip(&o.state) {
            assert_eq!(na, nb);
            let (a, b) = (
                a.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
                b.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            );
            assert!(a == b, "rank {} ended with other weights than rank 0 in `{na}`", o.rank);
        }
        assert_eq!(reports(&o.history), reports(&outcomes[0].history), "rank {} reports other numbers", o.rank);
    }
    let steps = steps.lock().unwrap().clone();
    Run { steps, history: outcomes.into_iter().next().unwrap().history }
}

/// Everything a report says but the wall-clock seconds.
type Numbers = (usize, f64, f64, Option<f64>, Option<f64>, f64);

fn reports(history: &[EpochReport]) -> Vec<Numbers> {
    history
        .iter()
        .map(|r| (r.epoch, r.train_loss, r.train_accuracy, r.val_loss, r.val_accuracy, r.learning_rate))
        .collect()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Compares N replicas of batch b with one process of batch N·b, step by step; returns the
/// largest difference of any parameter after any step.
fn assert_replicas_match_large_batch(name: &str, opt: Opt, world: usize, clip: Option<f64>) -> f64 {
    let (batch, epochs) = (8, 2);
    let one = single(name, opt, world * batch, epochs, clip);
    let many = replicated(name, opt, world, batch, epochs, clip);
    assert_eq!(one.steps.len(), epochs * 240 / (world * batch));
    assert_eq!(many.steps.len(), one.steps.len(), "{name} {opt:?} x{world}: number of steps");
    let mut worst = 0f64;
    for (s, (a, b)) in one.steps.iter().zip(&many.steps).enumerate() {
        let d = max_abs_diff(a, b);
        assert!(d <= 1e-6, "{name} {opt:?} x{world}: step {s} differs by {d:e}");
        worst = worst.max(d);
    }
    // The weights moved: the comparison is not between two untouched models.
    assert!(max_abs_diff(&one.steps[0], one.steps.last().unwrap()) > 1e-2);
    assert_eq!(one.history.len(), epochs);
    for (a, b) in one.history.iter().zip(&many.history) {
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-6;
        assert!(close(a.train_loss, b.train_loss), "{name} {opt:?} x{world}: {a:?} vs {b:?}");
        assert!(close(a.train_accuracy, b.train_accuracy), "{a:?} vs {b:?}");
        assert!(close(a.val_loss.unwrap(), b.val_loss.unwrap()), "{a:?} vs {b:?}");
        assert_eq!(a.val_accuracy, b.val_accuracy);
        assert_eq!(a.val_confusion, b.val_confusion, "every validation digit counted once");
    }
    worst
}

#[test]
fn mlp_replicas_step_like_one_large_batch() {
    let mut worst = 0f64;
    for (opt, world, clip) in [(Opt::SgdMomentum, 2, None), (Opt::Adam, 3, None), (Opt::SgdMomentum, 3, Some(0.5))] {
        worst = worst.max(assert_replicas_match_large_batch("mlp", opt, world, clip));
    }
    eprintln!("mlp: largest per-step parameter difference {worst:e}");
}

#[test]
fn cnn_two_adam_replicas_step_like_one_large_batch() {
    let worst = assert_replicas_match_large_batch("mnist-cnn", Opt::Adam, 2, None);
    eprintln!("mnist-cnn, Adam, 2 replicas: largest per-step parameter difference {worst:e}");
}

#[test]
fn cnn_three_sgd_momentum_replicas_step_like_one_large_batch() {
    let worst = assert_replicas_match_large_batch("mnist-cnn", Opt::SgdMomentum, 3, None);
    eprintln!("mnist-cnn, SGD-momentum, 3 replicas: largest per-step parameter difference {worst:e}");
}

fn state_bits(state: &[(String, Tensor)]) -> Vec<(String, Vec<u64>)> {
    state
        .iter()
        .map(|(k, t)| {
            (k.clone(), t.flatten_all().unwrap().to_vec1::<f64>().unwrap().iter().map(|v| v.to_bits()).collect())
        })
        .collect()
}

fn bits(history: &[EpochReport]) -> Vec<Vec<u64>> {
    history
        .iter()
        .map(|r| {
            let mut v =
                vec![r.epoch as u64, r.train_loss.to_bits(), r.train_accuracy.to_bits(), r.learning_rate.to_bits()];
            v.extend([r.val_loss, r.val_accuracy].iter().map(|x| x.unwrap().to_bits()));
            v
        })
        .collect()
}

#[test]
fn a_resumed_replicated_run_is_bit_identical_to_an_uninterrupted_one() {
    let (train, val) = data(8);
    let run = |dir: &Path, epochs: usize, resume: bool| {
        fit_replicated(2, &train, Some(&val), |rank| {
            // Ranks seeded apart, and the resumed process seeded apart from the first.
            let (step, store) = model("mlp", 100 * u64::from(resume) + rank as u64);
            let optim = BoxedOptimizer(optimizer(Opt::Adam, &store));
            Ok(Replica::new(step, store, optim, options(epochs, None)).with_run_dir(dir).resuming(resume))
        })
        .unwrap()
    };
    let straight_dir = tempfile::tempdir().unwrap();
    let straight = run(straight_dir.path(), 3, false);
    let dir = tempfile::tempdir().unwrap();
    let first = run(dir.path(), 1, false);
    assert_eq!(first[0].history.len(), 1);
    let resumed = run(dir.path(), 3, true);
    for (a, b) in straight.iter().zip(&resumed) {
        assert_eq!(b.history.len(), 3);
        assert_eq!(bits(&a.history), bits(&b.history), "rank {}", a.rank);
        assert_eq!(state_bits(&a.state), state_bits(&b.state), "rank {}", a.rank);
    }
    // Epoch 1 of the resumed run is the first run's, read back from rank 0's resume file.
    assert_eq!(bits(&first[0].history), bits(&resumed[1].history[..1]));
}

/// Counts its epoch ends across all replicas and stops training after `stop_after` epochs.
struct StopAfter {
    epochs: Arc<AtomicUsize>,
    stop_after: usize,
}

impl Callback for StopAfter {
    fn name(&self) -> &str {
        "stop_after"
    }

    fn on_epoch_end(&mut self, _ctx: &CallbackContext, report: &EpochReport) -> ember_train::Result<Control> {
        self.epochs.fetch_add(1, Ordering::SeqCst);
        Ok(if report.epoch >= self.stop_after { Control::Stop } else { Control::Continue })
    }
}

#[test]
fn only_rank_zero_writes_and_its_stop_decision_stops_every_rank() {
    let (train, val) = data(16);
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let epoch_ends = Arc::new(AtomicUsize::new(0));
    let outcomes = fit_replicated(3, &train, Some(&val), |rank| {
        let (step, store) = model("mlp", rank as u64);
        let optim = BoxedOptimizer(optimizer(Opt::SgdMomentum, &store));
        // Every rank is configured alike, each with its own directory: only rank 0's fills.
        let dir = dirs[rank].path();
        Ok(Replica::new(step, store, optim, options(5, None))
            .with_run_dir(dir)
            .with_callback(CsvLogger::new(dir.join("metrics.csv")))
            .with_callback(ModelCheckpoint::new(dir, "val_loss", Mode::Min))
            .with_callback(StopAfter { epochs: epoch_ends.clone(), stop_after: 2 }))
    })
    .unwrap();
    assert!(outcomes.iter().all(|o| o.history.len() == 2), "every rank stops after rank 0's epoch 2");
    assert_eq!(epoch_ends.load(Ordering::SeqCst), 2, "callbacks run once per epoch, on rank 0");
    let names = |dir: &Path| {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    let written = names(dirs[0].path());
    assert!(written.contains(&"resume.safetensors".to_string()), "{written:?}");
    assert!(written.contains(&"metrics.csv".to_string()), "{written:?}");
    assert!(written.contains(&"best.safetensors".to_string()), "{written:?}");
    let csv = std::fs::read_to_string(dirs[0].path().join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "a header and one line per epoch, written once: {csv}");
    for dir in &dirs[1..] {
        assert_eq!(names(dir.path()), Vec::<String>::new());
    }
}

/// A step that fails on one rank: a NaN loss, or an error, at `at` batches into epoch 1.
struct FailingStep {
    inner: F64Classifier,
    calls: AtomicUsize,
    at: usize,
    nan: bool,
}

impl TrainStep for FailingStep {
    fn step(&self, batch: &Batch, train: bool) -> candle_core::Result<StepOutput> {
        let out = self.inner.step(batch, train)?;
        if train && self.calls.fetch_add(1, Ordering::SeqCst) == self.at {
            if self.nan {
                return Ok(StepOutput { loss: (out.loss * f64::NAN)?, logits: out.logits });
            }
            candle_core::bail!("injected failure");
        }
        Ok(out)
    }
}

/// Runs three replicas with rank `failing` failing, and returns every rank's error; fails the
/// test instead of hanging when the ranks deadlock.
fn errors_of_every_rank(failing: usize, nan: bool) -> Vec<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (train, val) = data(8);
        let results = run_replicated(3, |member| {
            let rank = member.rank();
            let (inner, store) = model("mlp", 1);
            let at = if rank == failing { 3 } else { usize::MAX };
            let step = FailingStep { inner, calls: AtomicUsize::new(0), at, nan };
            let mut optim = optimizer(Opt::Adam, &store);
            let mut learner = Learner::with_step(step, &store, optim.as_mut()).with_collective(member);
            Ok(learner.fit(&train, Some(&val), &options(2, None)).map(|_| ()).map_err(|e| match e {
                Error::NonFiniteLoss { epoch, batch, .. } => {
                    format!("non-finite loss at epoch {epoch} batch {batch:?}")
                }
                Error::ReplicaFailed { rank, .. } => format!("replica {rank} failed"),
                other => other.to_string(),
            }))
        });
        let _ = tx.send(results);
    });
    let results = rx.recv_timeout(Duration::from_secs(120)).expect("the replicas deadlocked").unwrap();
    results.into_iter().map(|r| r.expect_err("every rank must end with an error")).collect()
}

#[test]
fn a_non_finite_loss_on_one_rank_stops_every_rank_at_the_same_step() {
    let errors = errors_of_every_rank(1, true);
    assert_eq!(errors, vec!["non-finite loss at epoch 1 batch Some(3)"; 3]);
}

#[test]
fn an_error_on_one_rank_ends_every_rank_with_an_error() {
    let errors = errors_of_every_rank(2, false);
    assert!(errors[2].contains("injected failure"), "{errors:?}");
    assert_eq!(errors[..2], ["replica 2 failed", "replica 2 failed"]);
}

#[test]
fn ranks_that_disagree_on_the_plan_fail_instead_of_waiting() {
    let (train, _) = data(8);
    let result = run_replicated(2, |member| {
        let rank = member.rank();
        let (step, store) = model("mlp", 1);
        let mut optim = optimizer(Opt::Adam, &store);
        // Rank 1 would take twice as many steps per epoch.
        let train = if rank == 0 { train.clone() } else { DataLoader::new(train.dataset().clone(), 4) };
        let mut learner = Learner::with_step(step, &store, optim.as_mut()).with_collective(member);
        learner.fit(&train, None, &options(1, None))
    });
    assert!(matches!(result, Err(Error::Collective(_))), "{result:?}");
    // A loader sharded for another rank is refused.
    let mut members = InProcessGroup::new(1).unwrap();
    let (step, store) = model("mlp", 1);
    let mut optim = optimizer(Opt::Adam, &store);
    let wrong = train.shard(1, 2).unwrap();
    let result = Learner::with_step(step, &store, optim.as_mut()).with_collective(members.remove(0)).fit(
        &wrong,
        None,
        &options(1, None),
    );
    assert!(matches!(result, Err(Error::Invalid(_))), "{result:?}");
}

#[test]
fn in_process_sums_are_in_rank_order_on_every_rank() {
    // 1e16 + 1 - 1e16 depends on the order of the additions: rank order gives (1e16 + 1) - 1e16.
    let values = [1e16, 1.0, -1e16, 3.0];
    let results = run_replicated(4, |mut member| {
        let rank = member.rank();
        // Arrive in reverse rank order.
        std::thread::sleep(Duration::from_millis(20 * (3 - rank as u64)));
        let t = Tensor::new(&[values[rank], rank as f64], &Device::Cpu)?;
        let sum = member.all_reduce_sum(std::slice::from_ref(&t))?[0].to_vec1::<f64>()?;
        let mean = member.all_reduce_mean(std::slice::from_ref(&t))?[0].to_vec1::<f64>()?;
        let from_zero = member.broadcast(&[t])?[0].to_vec1::<f64>()?;
        member.barrier()?;
        Ok((sum, mean, from_zero))
    })
    .unwrap();
    let in_order = ((1e16f64 + 1.0) + -1e16) + 3.0;
    for (sum, mean, from_zero) in results {
        assert_eq!(sum, vec![in_order, 6.0]);
        assert_eq!(mean, vec![in_order / 4.0, 1.5]);
        assert_eq!(from_zero, vec![1e16, 0.0]);
    }
}

#[test]
fn in_process_mismatches_and_aborts_are_errors_not_hangs() {
    assert!(matches!(InProcessGroup::new(0), Err(Error::Collective(_))));
    let shapes = run_replicated(2, |mut member| {
        let t = Tensor::zeros(member.rank() + 1, DType::F64, &Device::Cpu)?;
        member.all_reduce_sum(&[t]).map(|_| ())
    });
    assert!(matches!(shapes, Err(Error::Collective(_))), "{shapes:?}");
    let aborted = run_replicated(3, |mut member| {
        if member.rank() == 1 {
            member.abort("out of memory");
            return Ok(());
        }
        member.barrier()
    });
    match aborted {
        Err(Error::ReplicaFailed { rank, reason }) => assert_eq!((rank, reason.as_str()), (1, "out of memory")),
        other => panic!("{other:?}"),
    }
}

/// Replicas as separate processes would run them: each on its own thread with its own TCP
/// connections to rank 0 (a loopback group), driven by `fit_replica`. They train exactly as the
/// in-process group's threads do: the same sums in the same order, so the same bits.
#[test]
fn replicas_over_tcp_train_bit_for_bit_as_replicas_on_threads() {
    use ember_train::rendezvous::{connect, MasterListener};
    use ember_train::{fit_replica, RendezvousOptions, TcpCollective};

    let (world, batch, epochs, opt, clip) = (3, 8, 2, Opt::Adam, Some(0.5));
    let on_threads = replicated("mlp", opt, world, batch, epochs, clip);

    let rendezvous = RendezvousOptions { join_timeout: Duration::from_secs(20), timeout: Duration::from_secs(60) };
    let mut master = Some(MasterListener::bind("127.0.0.1", 0, world).unwrap());
    let port = master.as_ref().unwrap().port();
    let (train, val) = data(batch);
    let steps = Arc::new(Mutex::new(Vec::new()));
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..world)
            .map(|rank| {
                let listener = if rank == 0 { master.take() } else { None };
                let (train, val, steps) = (&train, &val, steps.clone());
                scope.spawn(move || {
                    let store = match listener {
                        Some(listener) => listener.accept(&rendezvous)?,
                        None => connect("127.0.0.1", port, rank, world, &rendezvous)?,
                    };
                    let (step, params) = model("mlp", 7 + rank as u64);
                    let optim = BoxedOptimizer(optimizer(opt, &params));
                    let replica = Replica::new(step, params, optim, options(epochs, clip));
                    let replica = if rank == 0 { replica.with_callback(Recorder(steps)) } else { replica };
                    fit_replica(TcpCollective::new(store), replica, train, Some(val))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
    });
    let over_tcp = steps.lock().unwrap().clone();
    assert_eq!(over_tcp.len(), epochs * 240 / (world * batch));
    assert_eq!(over_tcp.len(), on_threads.steps.len());
    for (s, (a, b)) in on_threads.steps.iter().zip(&over_tcp).enumerate() {
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(bits(a) == bits(b), "step {s}: parameters differ by {:e}", max_abs_diff(a, b));
    }
    for o in &outcomes {
        assert_eq!(bits(&o.history), bits(&on_threads.history), "rank {}", o.rank);
        assert_eq!(state_bits(&o.state), state_bits(&outcomes[0].state), "rank {}", o.rank);
    }
}
