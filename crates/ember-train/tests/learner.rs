//! The learner: exact resumption, early stopping on a scripted metric, logs and plots.

use std::sync::Arc;

use candle_core::{DType, Device};
use ember_data::{mnist_sample, DataLoader, Split};
use ember_layers::ParamStore;
use ember_optim::schedule::MultiStep;
use ember_optim::{Adam, AdamConfig, OneCycle};
#[cfg(feature = "plots")]
use ember_train::PlotLogger;
#[cfg(feature = "tensorboard")]
use ember_train::TensorBoardLogger;
use ember_train::{checkpoint, CsvLogger, EarlyStopping, FitOptions, Learner, Mode, ModelCheckpoint, SchedulePer};

fn data() -> (DataLoader, DataLoader) {
    let train = mnist_sample(Split::Train).unwrap().select(&(0..256).collect::<Vec<_>>()).unwrap();
    let val = mnist_sample(Split::Test).unwrap().select(&(0..200).collect::<Vec<_>>()).unwrap();
    (DataLoader::new(Arc::new(train), 32).with_shuffle(3), DataLoader::new(Arc::new(val), 100))
}

/// A fresh MNIST CNN whose parameters are drawn from `seed`: its store and the network.
fn mnist_cnn(seed: u64) -> (ParamStore, Box<dyn candle_nn::ModuleT + Send + Sync>) {
    let store = ParamStore::new(seed, &Device::Cpu);
    let model = ember_zoo::build("mnist-cnn", store.var_builder(DType::F32)).unwrap();
    (store, model)
}

fn state_bits(store: &ParamStore) -> Vec<(String, Vec<u32>)> {
    store
        .state()
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()))
        .collect()
}

#[test]
fn resumed_run_equals_uninterrupted_run_bit_for_bit() {
    let (train, val) = data();
    let schedule = OneCycle::new(0.003, 4 * train.num_batches());
    let options = FitOptions { schedule: Some(&schedule), ..FitOptions::new(4) };

    let (straight_store, model) = mnist_cnn(5);
    let mut adam = Adam::new(straight_store.vars(), AdamConfig::default()).unwrap();
    let straight = Learner::new(model.as_ref(), &straight_store, &mut adam).fit(&train, Some(&val), &options).unwrap();

    let dir = tempfile::tempdir().unwrap();
    {
        let (store, model) = mnist_cnn(5);
        let mut adam = Adam::new(store.vars(), AdamConfig::default()).unwrap();
        let two = FitOptions { schedule: Some(&schedule), ..FitOptions::new(2) };
        Learner::new(model.as_ref(), &store, &mut adam).with_run_dir(dir.path()).fit(&train, Some(&val), &two).unwrap();
    }
    // A new process: fresh (differently seeded) model and optimizer, state from the run dir.
    let (store, model) = mnist_cnn(99);
    let mut adam = Adam::new(store.vars(), AdamConfig::default()).unwrap();
    let mut learner = Learner::new(model.as_ref(), &store, &mut adam).with_run_dir(dir.path());
    learner.resume(dir.path()).unwrap();
    assert_eq!(learner.history().len(), 2);
    let resumed = learner.fit(&train, Some(&val), &options).unwrap();

    assert_eq!(resumed.len(), 4);
    for (a, b) in straight.iter().zip(&resumed).skip(2) {
        assert_eq!(
            (a.train_loss, a.val_loss, a.val_accuracy),
            (b.train_loss, b.val_loss, b.val_accuracy),
            "epoch {}",
            a.epoch
        );
    }
    assert_eq!(state_bits(&store), state_bits(&straight_store));
}

#[test]
fn early_stopping_stops_at_the_right_epoch_on_a_scripted_sequence() {
    let mut es = EarlyStopping::new("val_loss", Mode::Min, 3).with_min_delta(0.005);
    let losses = [1.0, 0.8, 0.85, 0.79, 0.797, 0.81, 0.82, 0.7];
    let stopped = losses.iter().enumerate().find(|&(i, &l)| es.observe(i + 1, l)).map(|(i, _)| i + 1);
    // 0.79 improves on 0.8 by more than 0.005 (epoch 4); 0.797 does not improve on it; three
    // epochs without improvement: stop after epoch 7, never seeing 0.7.
    assert_eq!(stopped, Some(7));
    assert_eq!(es.best(), Some((4, 0.79)));
}

#[test]
fn early_stopping_restores_the_best_weights_and_checkpoint_keeps_them() {
    let (train, val) = data();
    let dir = tempfile::tempdir().unwrap();
    // The monitored metric is the learning rate, scripted per epoch: 0.002 at epochs 1 and 2
    // (equal is no improvement), 0.001 at epoch 3. With patience 2 training stops after epoch 3
    // and epoch 1's weights come back.
    let schedule = MultiStep { base_lr: 0.002, milestones: vec![2, 3, 4, 5], gamma: 0.5 };
    let options = FitOptions { schedule: Some(&schedule), schedule_per: SchedulePer::Epoch, ..FitOptions::new(10) };
    let (store, model) = mnist_cnn(1);
    let mut adam = Adam::new(store.vars(), AdamConfig::default()).unwrap();
    let history = Learner::new(model.as_ref(), &store, &mut adam)
        .with_callback(ModelCheckpoint::new(dir.path(), "learning_rate", Mode::Max))
        .with_callback(EarlyStopping::new("learning_rate", Mode::Max, 2).with_restore_best(true))
        .with_callback(CsvLogger::new(dir.path().join("metrics.csv")))
        .fit(&train, Some(&val), &options)
        .unwrap();
    assert_eq!(history.iter().map(|r| r.learning_rate).collect::<Vec<_>>(), vec![0.002, 0.002, 0.001]);
    let (best, _) = mnist_cnn(7);
    checkpoint::load(&best, &dir.path().join("best.safetensors")).unwrap();
    assert_eq!(state_bits(&store), state_bits(&best), "restored weights must be the best epoch's");
    let (last, _) = mnist_cnn(7);
    checkpoint::load(&last, &dir.path().join("last.safetensors")).unwrap();
    assert_ne!(state_bits(&last), state_bits(&best));
    let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.starts_with("epoch,train_loss,train_accuracy,val_loss,val_accuracy,learning_rate,seconds"));
    // Read back for `ember compare`: every value but the rounded seconds exactly.
    let back = ember_train::callback::read_history(&dir.path().join("metrics.csv")).unwrap();
    assert_eq!(back.len(), history.len());
    for (b, h) in back.iter().zip(&history) {
        assert_eq!((b.epoch, b.epochs), (h.epoch, 3));
        assert_eq!(
            (b.train_loss, b.train_accuracy, b.learning_rate),
            (h.train_loss, h.train_accuracy, h.learning_rate)
        );
        assert_eq!((b.val_loss, b.val_accuracy), (h.val_loss, h.val_accuracy));
        assert_eq!(b.metric("gap"), Some(h.train_accuracy - h.val_accuracy.unwrap()));
    }
}

#[test]
fn a_damaged_metrics_csv_is_an_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.csv");
    let header = ember_train::callback::CSV_HEADER;
    for (body, needle) in [
        ("epoch,loss\n1,0.5\n".to_string(), "line 1"),
        (format!("{header}\n1,0.5,0.9,,,0.001,1.0\n2,0.4,x,,,0.001,1.0\n"), "line 3: `x`"),
        (format!("{header}\n1,0.5,0.9\n"), "line 2: 3 fields"),
        (format!("{header}\n-1,0.5,0.9,,,0.001,1.0\n"), "epoch `-1`"),
    ] {
        std::fs::write(&path, body).unwrap();
        let err = ember_train::callback::read_history(&path).unwrap_err().to_string();
        assert!(err.contains("metrics.csv") && err.contains(needle), "{err}");
    }
    // A run without validation has no validation values and no gap.
    std::fs::write(&path, format!("{header}\n1,0.5,0.9,,,0.001,1.0\n")).unwrap();
    let back = ember_train::callback::read_history(&path).unwrap();
    assert_eq!(
        (back[0].val_accuracy, back[0].metric("gap"), back[0].metric("train_accuracy")),
        (None, None, Some(0.9))
    );
}

#[test]
#[cfg(all(feature = "plots", feature = "tensorboard"))]
fn plots_and_tensorboard_logs_show_the_run() {
    let (train, val) = data();
    let dir = tempfile::tempdir().unwrap();
    let (store, model) = mnist_cnn(1);
    let mut adam = Adam::new(store.vars(), AdamConfig::default()).unwrap();
    let names: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    Learner::new(model.as_ref(), &store, &mut adam)
        .with_callback(PlotLogger::new(dir.path(), names.clone()))
        .with_callback(TensorBoardLogger::new(dir.path().join("tb"), 4).with_class_names(names))
        .fit(&train, Some(&val), &FitOptions::new(2))
        .unwrap();
    let curves = image::open(dir.path().join("learning_curves.png")).unwrap().to_rgb8();
    assert_eq!(curves.dimensions(), (960, 400));
    // Blue (train) and red (validation) curves are drawn.
    assert!(curves.pixels().any(|p| p.0 == [0, 0, 255]) && curves.pixels().any(|p| p.0 == [255, 0, 0]));
    let cm = image::open(dir.path().join("confusion_matrix.png")).unwrap().to_rgb8();
    assert_eq!(cm.dimensions(), (560, 560));
    assert!(cm.pixels().filter(|p| p.0[2] == 255 && p.0[0] < 128).count() > 1000, "dark diagonal cells expected");

    let event_file = std::fs::read_dir(dir.path().join("tb")).unwrap().next().unwrap().unwrap().path();
    let events = ember_train::tensorboard::read_events(&event_file).unwrap();
    let tags: std::collections::BTreeSet<String> =
        events.iter().flat_map(|e| e.scalars.iter().map(|(t, _)| t.clone())).collect();
    for tag in ["train/loss", "train/learning_rate", "epoch/train_loss", "epoch/val_loss", "epoch/val_accuracy"] {
        assert!(tags.contains(tag), "{tag} missing from {tags:?}");
    }
    assert_eq!(events.iter().map(|e| e.images.len()).sum::<usize>(), 2);
}

#[test]
fn non_finite_loss_stops_with_the_step_named_and_keeps_the_last_good_checkpoint() {
    let (train, val) = data();
    let dir = tempfile::tempdir().unwrap();
    // Epoch 1 trains normally; from epoch 2 the learning rate is absurd and the loss blows up.
    let schedule = MultiStep { base_lr: 0.001, milestones: vec![1], gamma: 1e12 };
    let options = FitOptions { schedule: Some(&schedule), schedule_per: SchedulePer::Epoch, ..FitOptions::new(5) };
    let (store, model) = mnist_cnn(2);
    let mut sgd = ember_optim::Sgd::new(store.vars(), ember_optim::SgdConfig::default()).unwrap();
    let err = Learner::new(model.as_ref(), &store, &mut sgd)
        .with_callback(ModelCheckpoint::new(dir.path(), "val_accuracy", Mode::Max))
        .fit(&train, Some(&val), &options)
        .unwrap_err();
    match err {
        ember_train::Error::NonFiniteLoss { epoch, batch, .. } => {
            assert_eq!((epoch, batch.is_none_or(|b| b < train.num_batches())), (2, true))
        }
        other => panic!("{other}"),
    }
    let (last, _) = mnist_cnn(0);
    checkpoint::load(&last, &dir.path().join("last.safetensors")).unwrap();
    assert!(last.state().iter().all(|(_, t)| t
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .all(|v| v.is_finite())));
}

/// A model with its own objective: a linear map trained by mean squared error to the one-hot
/// labels (no logits reported).
struct OneHotRegression {
    fc: ember_layers::Linear,
}

impl ember_train::TrainStep for OneHotRegression {
    fn step(&self, batch: &ember_data::Batch, _train: bool) -> candle_core::Result<ember_train::StepOutput> {
        use candle_nn::Module;
        let x = batch.images.flatten_from(1)?;
        let pred = self.fc.forward(&x)?;
        let target = candle_nn::encoding::one_hot(batch.labels.clone(), 10, 1f32, 0f32)?;
        Ok(ember_train::StepOutput { loss: (pred - target)?.sqr()?.mean_all()?, logits: None })
    }
}

#[test]
fn learner_trains_any_model_with_its_own_train_step() {
    let (train, val) = data();
    let store = ParamStore::new(4, &Device::Cpu);
    let model = OneHotRegression {
        fc: ember_layers::Linear::new(784, 10, true, store.var_builder(DType::F32).pp("fc")).unwrap(),
    };
    let mut adam = Adam::new(store.vars(), AdamConfig { lr: 0.01, ..AdamConfig::default() }).unwrap();
    let history = Learner::with_step(model, &store, &mut adam).fit(&train, Some(&val), &FitOptions::new(3)).unwrap();
    assert!(
        history[2].train_loss < history[0].train_loss * 0.8,
        "{:?}",
        history.iter().map(|r| r.train_loss).collect::<Vec<_>>()
    );
    assert!(history[2].val_loss.unwrap() < history[0].val_loss.unwrap());
    assert_eq!(history[0].val_accuracy, None, "no logits, no accuracy");

    // The same objective as a closure: a function of the batch is a step too, and with the same
    // seed it trains to the same numbers.
    let store2 = ParamStore::new(4, &Device::Cpu);
    let fc = ember_layers::Linear::new(784, 10, true, store2.var_builder(DType::F32).pp("fc")).unwrap();
    let step = |batch: &ember_data::Batch, _train: bool| {
        use candle_nn::Module;
        let pred = fc.forward(&batch.images.flatten_from(1)?)?;
        let target = candle_nn::encoding::one_hot(batch.labels.clone(), 10, 1f32, 0f32)?;
        Ok(ember_train::StepOutput { loss: (pred - target)?.sqr()?.mean_all()?, logits: None })
    };
    let mut adam2 = Adam::new(store2.vars(), AdamConfig { lr: 0.01, ..AdamConfig::default() }).unwrap();
    let again = Learner::with_step(step, &store2, &mut adam2).fit(&train, Some(&val), &FitOptions::new(3)).unwrap();
    let losses = |h: &[ember_train::EpochReport]| h.iter().map(|r| (r.train_loss, r.val_loss)).collect::<Vec<_>>();
    assert_eq!(losses(&again), losses(&history));
}

#[test]
#[cfg(feature = "tensorboard")]
fn failing_logger_is_turned_off_and_the_resume_file_is_still_committed() {
    let (train, val) = data();
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the TensorBoard directory should be: every write fails.
    let not_a_dir = dir.path().join("tensorboard");
    std::fs::write(&not_a_dir, b"").unwrap();
    let (store, model) = mnist_cnn(1);
    let mut adam = Adam::new(store.vars(), AdamConfig::default()).unwrap();
    let mut learner = Learner::new(model.as_ref(), &store, &mut adam)
        .with_run_dir(dir.path())
        .with_callback(TensorBoardLogger::new(&not_a_dir, 1))
        .with_callback(CsvLogger::new(dir.path().join("metrics.csv")));
    let history = learner.fit(&train, Some(&val), &FitOptions::new(2)).unwrap();
    assert_eq!(history.len(), 2);
    let failures = learner.failures();
    assert_eq!(failures.len(), 1, "one failure, then the logger is off: {failures:?}");
    assert_eq!((failures[0].callback.as_str(), failures[0].epoch), ("tensorboard", 1));
    assert!(failures[0].to_string().contains("tensorboard"), "{}", failures[0]);
    assert!(dir.path().join(ember_train::RESUME_FILE).is_file());
    assert_eq!(std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap().lines().count(), 3);
}

#[test]
#[cfg(feature = "tensorboard")]
fn resumed_run_logs_every_tensorboard_step_once() {
    let (train, val) = data();
    let dir = tempfile::tempdir().unwrap();
    let tb = dir.path().join("tb");
    let resume = dir.path().join(ember_train::RESUME_FILE);
    let after_one = dir.path().join("after_one");
    {
        let (store, model) = mnist_cnn(2);
        let mut adam = Adam::new(store.vars(), AdamConfig::default()).unwrap();
        let mut learner = Learner::new(model.as_ref(), &store, &mut adam)
            .with_run_dir(dir.path())
            .with_callback(TensorBoardLogger::new(&tb, 3));
        learner.fit(&train, Some(&val), &FitOptions::new(1)).unwrap();
        std::fs::copy(&resume, &after_one).unwrap();
        learner.fit(&train, Some(&val), &FitOptions::new(2)).unwrap();
    }
    // As if killed after epoch 2's events were written but before its resume file was committed.
    std::fs::rename(&after_one, &resume).unwrap();
    let (store, model) = mnist_cnn(2);
    let mut adam = Adam::new(store.vars(), AdamConfig::default()).unwrap();
    let mut learner = Learner::new(model.as_ref(), &store, &mut adam)
        .with_run_dir(dir.path())
        .with_callback(TensorBoardLogger::new(&tb, 3));
    learner.resume(dir.path()).unwrap();
    learner.fit(&train, Some(&val), &FitOptions::new(2)).unwrap();

    let files: Vec<_> = std::fs::read_dir(&tb).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "the resumed run continues the committed event file: {files:?}");
    let events = ember_train::tensorboard::read_events(&files[0]).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for e in &events {
        for (tag, _) in &e.scalars {
            assert!(seen.insert((tag.clone(), e.step)), "{tag} at step {} logged twice", e.step);
        }
    }
    let count = |tag: &str| seen.iter().filter(|(t, _)| t == tag).count();
    assert_eq!(count("epoch/train_loss"), 2);
    assert_eq!(count("train/loss"), 2 * train.num_batches() / 3);
}
