//! `ember train`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device};
use ember_augment::Pipeline;
use ember_data::{stratified_split, DataLoader, Dataset, KnownDataset, Split, Subset};
use ember_layers::ParamStore;
use ember_optim::schedule::{CosineAnnealing, StepDecay};
use ember_optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, OneCycle, Optimizer, RmsProp, RmsPropConfig, Schedule, Sgd, SgdConfig,
};
use ember_train::callback::OnEpoch;
use ember_train::{
    checkpoint, CsvLogger, EarlyStopping, EpochReport, FitOptions, Learner, Mode, ModelCheckpoint, PlotLogger,
    TensorBoardLogger,
};
use serde_json::json;

use crate::args::{OptimizerArg, ScheduleArg, TrainArgs};
use crate::progress::EpochProgress;
use crate::run_info::RunInfo;
use crate::train_config::TrainConfig;

fn optimizer(config: &TrainConfig, store: &ParamStore) -> anyhow::Result<Box<dyn Optimizer>> {
    let (lr, wd, params) = (config.lr, config.weight_decay, store.vars());
    Ok(match config.optimizer {
        OptimizerArg::Adam => {
            Box::new(Adam::new(params, AdamConfig { lr, weight_decay: wd, ..AdamConfig::default() })?)
        }
        OptimizerArg::Adamw => Box::new(Adam::new(params, AdamConfig { lr, weight_decay: wd, ..AdamConfig::adamw() })?),
        OptimizerArg::Sgd => Box::new(Sgd::new(
            params,
            SgdConfig { lr, momentum: 0.9, nesterov: true, weight_decay: wd, ..SgdConfig::default() },
        )?),
        OptimizerArg::Rmsprop => {
            Box::new(RmsProp::new(params, RmsPropConfig { lr, weight_decay: wd, ..RmsPropConfig::default() })?)
        }
        OptimizerArg::Adagrad => {
            Box::new(Adagrad::new(params, AdagradConfig { lr, weight_decay: wd, ..AdagradConfig::default() })?)
        }
    })
}

fn schedule(config: &TrainConfig, total_steps: usize) -> Option<Box<dyn Schedule>> {
    match config.scheduler {
        ScheduleArg::OneCycle => Some(Box::new(OneCycle::new(config.lr, total_steps))),
        ScheduleArg::Cosine => Some(Box::new(CosineAnnealing { base_lr: config.lr, t_max: total_steps, eta_min: 0.0 })),
        ScheduleArg::Step => {
            Some(Box::new(StepDecay { base_lr: config.lr, step_size: total_steps.div_ceil(3).max(1), gamma: 0.5 }))
        }
        ScheduleArg::Constant => None,
    }
}

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = match &args.resume {
        Some(dir) => TrainConfig::for_resume(dir, args)?,
        None => TrainConfig::resolve(args)?,
    };
    let dataset: KnownDataset = config.dataset.parse()?;
    let data_dir = config.data_dir.as_deref();
    let mut train_set = super::load_split(dataset, data_dir, Split::Train)?;
    if let Some(limit) = config.train_limit {
        let n = limit.min(train_set.len());
        train_set = train_set.select(&(0..n).collect::<Vec<_>>())?;
    }
    let mut test_set = super::load_split(dataset, data_dir, Split::Test)?;
    if let Some(limit) = config.test_limit {
        let n = limit.min(test_set.len());
        test_set = test_set.select(&(0..n).collect::<Vec<_>>())?;
    }
    let classes = train_set.classes();
    let input = (1, train_set.height(), train_set.width());
    let train_set: Arc<dyn Dataset> = Arc::new(train_set);
    let test_set: Arc<dyn Dataset> = Arc::new(test_set);
    let (train_data, val_data): (Arc<dyn Dataset>, Arc<dyn Dataset>) = match config.val_split {
        Some(fraction) => {
            let split = stratified_split(train_set.as_ref(), fraction, config.seed)?;
            (Arc::new(Subset::new(train_set.clone(), split.train)?), Arc::new(Subset::new(train_set, split.val)?))
        }
        None => (train_set, test_set.clone()),
    };

    let device = Device::Cpu;
    let store = ParamStore::new(config.seed, &device);
    anyhow::ensure!(
        ember_zoo::info(&config.model)?.task == ember_zoo::Task::Classification,
        "`{}` is not a classifier (train VAEs with `ember vae train`)",
        config.model
    );
    let model_options = ember_zoo::ModelOptions { seed: config.seed, ..ember_zoo::ModelOptions::new(input, classes) };
    let model = ember_zoo::build_with(&config.model, &model_options, store.var_builder(DType::F32))?;
    let mut optimizer = optimizer(&config, &store)?;

    let n_train = train_data.len();
    let mut train_loader = DataLoader::new(train_data, config.batch_size).with_shuffle(config.seed).with_workers(1);
    let pipeline = Pipeline::parse(&config.ops)?;
    if !pipeline.is_identity() {
        train_loader = train_loader.with_transform(Arc::new(pipeline));
    }
    let val_loader = DataLoader::new(val_data.clone(), 500);
    let test_loader = DataLoader::new(test_set.clone(), 500);
    let schedule = schedule(&config, config.epochs * train_loader.num_batches());

    let out = &config.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating run directory {}", out.display()))?;
    let stale = checkpoint::remove_stale_temporaries(out)?;
    if !stale.is_empty() {
        println!("removed {} temporary files of an interrupted write in {}", stale.len(), out.display());
    }
    config.save(out)?;
    let names: Vec<String> = dataset.class_names().iter().map(|s| s.to_string()).collect();
    let logdir = config.logdir.clone().unwrap_or_else(|| out.join("tensorboard"));
    let mut learner = Learner::new(&model, &store, optimizer.as_mut())
        .with_run_dir(out)
        .with_callback(EpochProgress::new())
        .with_callback(OnEpoch(print_epoch))
        .with_callback(ModelCheckpoint::new(out, "val_accuracy", Mode::Max))
        .with_callback(CsvLogger::new(out.join("metrics.csv")))
        .with_callback(PlotLogger::new(out, names.clone()))
        .with_callback(TensorBoardLogger::new(&logdir, 10).with_class_names(names));
    if let Some(patience) = config.early_stopping {
        learner =
            learner.with_callback(EarlyStopping::new("val_accuracy", Mode::Max, patience).with_restore_best(true));
    }
    let committed = out.join(ember_train::RESUME_FILE).is_file();
    if args.resume.is_some() && committed {
        learner.resume(out)?;
        println!("resuming {} after epoch {} of {}", out.display(), learner.history().len(), config.epochs);
    } else {
        if args.resume.is_some() {
            // Killed before the first epoch was committed: nothing to continue but the settings.
            let removed = remove_uncommitted_events(out, &logdir)?;
            println!(
                "resuming {}: no epoch was committed (no {}), starting from epoch 1{}",
                out.display(),
                ember_train::RESUME_FILE,
                if removed > 0 {
                    format!(" ({removed} uncommitted TensorBoard event files removed)")
                } else {
                    "".into()
                }
            );
        }
        println!(
            "training {} on {} ({} train / {} validation / {} test images), {} parameters, {} epochs, batch {}, {:?} lr {} ({:?}), seed {}",
            config.model,
            data_dir.map_or_else(|| dataset.to_string(), |d| d.display().to_string()),
            n_train,
            val_data.len(),
            test_set.len(),
            store.num_parameters(),
            config.epochs,
            config.batch_size,
            config.optimizer,
            config.lr,
            config.scheduler,
            config.seed
        );
    }
    let options = FitOptions {
        schedule: schedule.as_deref(),
        clip_grad_norm: config.clip_grad_norm,
        classes,
        ..FitOptions::new(config.epochs)
    };
    let history = learner.fit(&train_loader, Some(&val_loader), &options)?;
    for failure in learner.failures() {
        eprintln!("warning: {failure}");
    }

    let weights = out.join("model.safetensors");
    checkpoint::save(&store, &weights)?;
    let eval = ember_train::evaluate(&model, &test_loader, classes)?;
    let accuracy = eval.confusion.accuracy();
    let seconds = started.elapsed().as_secs_f64();
    let info = RunInfo {
        ember_version: env!("CARGO_PKG_VERSION").to_string(),
        config: config.clone(),
        train_images: n_train,
        epochs_run: history.len(),
        input: [input.0, input.1, input.2],
        classes,
        test_accuracy: accuracy,
        seconds,
    };
    info.save(&out.join("run.json"))?;
    println!(
        "test accuracy {:.2} % on {} images ({} correct), {:.1} s; weights in {}",
        accuracy * 100.0,
        eval.confusion.total(),
        (accuracy * eval.confusion.total() as f64).round(),
        seconds,
        weights.display()
    );
    if args.json {
        let epochs: Vec<_> = history
            .iter()
            .map(|r| json!({"epoch": r.epoch, "train_loss": r.train_loss, "train_accuracy": r.train_accuracy, "val_loss": r.val_loss, "val_accuracy": r.val_accuracy, "learning_rate": r.learning_rate, "seconds": r.seconds}))
            .collect();
        let out = json!({
            "accuracy": accuracy,
            "test_loss": eval.loss,
            "test_images": eval.confusion.total(),
            "checkpoint": weights,
            "seconds": seconds,
            "epochs": epochs,
        });
        println!("{out}");
    }
    Ok(())
}

/// Removes ember's event files from `logdir` when it lies inside the run directory `out`: they
/// hold only epochs that were never committed. A log directory elsewhere is left alone.
fn remove_uncommitted_events(out: &std::path::Path, logdir: &std::path::Path) -> anyhow::Result<usize> {
    if !logdir.starts_with(out) || !logdir.is_dir() {
        return Ok(0);
    }
    let mut removed = 0;
    for entry in std::fs::read_dir(logdir).with_context(|| format!("{}", logdir.display()))? {
        let path = entry.with_context(|| format!("{}", logdir.display()))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with("events.out.tfevents.") && name.contains(".ember.") && path.is_file() {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn print_epoch(r: &EpochReport) {
    println!(
        "epoch {:>2}/{}  train_loss {:.4}  train_acc {:.4}  val_loss {:.4}  val_acc {:.4}  lr {:.2e}  {:.1}s",
        r.epoch,
        r.epochs,
        r.train_loss,
        r.train_accuracy,
        r.val_loss.unwrap_or(f64::NAN),
        r.val_accuracy.unwrap_or(f64::NAN),
        r.learning_rate,
        r.seconds
    );
}
