//! `ember train`.

use std::time::Instant;

use anyhow::Context;
use candle_core::DType;
use ember_data::ColorMode;
use ember_layers::ParamStore;
use ember_train::callback::{Callback, OnEpoch};
use ember_train::{
    checkpoint, CsvLogger, EarlyStopping, EpochReport, FitOptions, Learner, Mode, ModelCheckpoint, PlotLogger, Replica,
    TensorBoardLogger,
};
use ember_zoo::ModelCard;
use serde_json::json;

use crate::args::TrainArgs;
use crate::data::InputPlan;
use crate::progress::EpochProgress;
use crate::run_info::{RunInfo, SplitsInfo};
use crate::train_config::TrainConfig;

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    // One process of a group (torchrun's variables), checked before anything is read.
    let group = crate::group::from_env()?;
    anyhow::ensure!(
        group.is_none() || args.devices.is_empty(),
        "--devices runs replicas as threads of this process, but WORLD_SIZE is set (one process per replica): \
         use --device cpu or --device cuda"
    );
    // Only rank 0 of a group writes the run directory and reports.
    let leader = group.as_ref().is_none_or(|g| g.rank == 0);
    let mut config = match &args.resume {
        Some(dir) => TrainConfig::for_resume(dir, args)?,
        None => TrainConfig::resolve(args)?,
    };
    let info = ember_zoo::info(&config.model)?;
    anyhow::ensure!(
        info.task == ember_zoo::Task::Classification,
        "`{}` is not a classifier (train VAEs with `ember vae train`)",
        config.model
    );
    let (model_channels, model_side, _) = info.input;
    let mut data = crate::data::open(
        Some(config.dataset.as_str()).filter(|d| !d.is_empty()),
        config.data_dir.as_deref(),
        ColorMode::for_channels(model_channels),
        config.skip_bad_images,
    )?;
    config.dataset = data.kind.name().to_string();
    if let Some(limit) = config.train_limit {
        data.limit_train(limit)?;
    }
    if let Some(limit) = config.test_limit {
        data.limit_test(limit)?;
    }
    data.carve_validation(config.val_split.unwrap_or(DEFAULT_VAL_SPLIT), config.seed)?;
    let classes = data.classes();
    // Images of one fixed size train at that size in their own colour; folders at the model's.
    let fixed = crate::data::fixed_input(&data)?;
    let channels = fixed.map_or(model_channels, |f| f.0);
    let side = config.size.or(fixed.map(|f| f.1)).unwrap_or(model_side);
    let plan = InputPlan::new(&data, channels, side, info.preprocessing)?;
    let input = plan.input;
    let workers = crate::data::workers();
    let ops = plan.train_ops(config.ops.as_deref(), "pad-crop:2");
    let train_data = data.train.clone();
    let val_data = data.val.clone().context("no validation split")?;
    let train_loader = plan.train_loader(train_data.clone(), config.batch_size, config.seed, &ops, workers)?;
    let val_loader = plan.eval_loader(val_data.clone(), crate::data::eval_batch(input), workers)?;

    let devices = args.devices.iter().map(|d| d.open()).collect::<anyhow::Result<Vec<_>>>()?;
    let device = match (&group, devices.first()) {
        (Some(group), _) => crate::group::device(group, args.device.device).open()?,
        (None, Some(first)) => first.clone(),
        (None, None) => args.device.open()?,
    };
    let store = ParamStore::new(config.seed, &device);
    let model_options = ember_zoo::ModelOptions {
        seed: config.seed,
        dropout: config.dropout,
        batch_norm: config.batch_norm,
        ..ember_zoo::ModelOptions::new(input, classes)
    };
    let model = ember_zoo::build_with(&config.model, &model_options, store.var_builder(DType::F32))?;
    let mut optimizer = config.optimizer.build(store.vars())?;
    let schedule = config.schedule.build(config.optimizer.lr(), config.epochs * train_loader.num_batches())?;
    let card = ModelCard {
        model: config.model.clone(),
        input,
        class_names: data.class_names.clone(),
        preprocessing: plan.preprocessing,
        batch_norm: config.batch_norm,
    };

    let out = &config.out;
    if leader {
        std::fs::create_dir_all(out).with_context(|| format!("creating run directory {}", out.display()))?;
        let stale = checkpoint::remove_stale_temporaries(out)?;
        if !stale.is_empty() {
            println!("removed {} temporary files of an interrupted write in {}", stale.len(), out.display());
        }
        config.save(out)?;
    }
    let names = data.class_names.clone();
    let logdir = config.logdir.clone().unwrap_or_else(|| out.join("tensorboard"));
    // What the run directory gets, built again for the first replica of a data-parallel run.
    let callbacks = || -> Vec<Box<dyn Callback>> {
        let mut callbacks: Vec<Box<dyn Callback>> = vec![
            Box::new(EpochProgress::new()),
            Box::new(OnEpoch(print_epoch)),
            Box::new(ModelCheckpoint::new(out, "val_accuracy", Mode::Max).with_metadata(card.to_metadata())),
            Box::new(CsvLogger::new(out.join("metrics.csv"))),
            Box::new(PlotLogger::new(out, names.clone())),
            Box::new(TensorBoardLogger::new(&logdir, 10).with_class_names(names.clone())),
        ];
        if let Some(patience) = config.early_stopping {
            callbacks.push(Box::new(EarlyStopping::new("val_accuracy", Mode::Max, patience).with_restore_best(true)));
        }
        callbacks
    };
    let mut learner = Learner::new(&model, &store, optimizer.as_mut()).with_run_dir(out);
    for callback in callbacks() {
        learner = learner.with_callback(callback);
    }
    let committed = out.join(ember_train::RESUME_FILE).is_file();
    let resuming = args.resume.is_some() && committed;
    if !leader {
        // Rank 0 reports the run; the others say only who they are.
        if resuming {
            learner.resume(out)?;
        }
    } else if resuming {
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
            "training {} ({}x{}x{} input, {} classes, {} parameters) on {} data, {} epochs, batch {}, {:?} lr {} ({}), seed {}",
            config.model,
            input.0,
            input.1,
            input.2,
            classes,
            store.num_parameters(),
            data.kind,
            config.epochs,
            config.batch_size,
            config.optimizer.kind(),
            config.optimizer.lr(),
            config.schedule.name(),
            config.seed
        );
        print_splits(&data);
    }
    let options = FitOptions {
        schedule: schedule.as_deref(),
        clip_grad_norm: config.clip_grad_norm,
        classes,
        device: device.clone(),
        ..FitOptions::new(config.epochs)
    };
    // One replica of a data-parallel run, built alike on every rank (and thread).
    let replica = |rank: usize, world: usize, device: &candle_core::Device| -> ember_train::Result<Replica> {
        let invalid = |e: &dyn std::fmt::Display| ember_train::Error::Invalid(format!("replica {rank}: {e}"));
        let total_steps = config.epochs * train_loader.shard(0, world)?.num_batches();
        let store = ParamStore::new(config.seed, device);
        let model = ember_zoo::build_with(&config.model, &model_options, store.var_builder(DType::F32))
            .map_err(|e| invalid(&e))?;
        let optimizer = config.optimizer.build(store.vars()).map_err(|e| invalid(&e))?;
        let schedule = config.schedule.build(config.optimizer.lr(), total_steps).map_err(|e| invalid(&e))?;
        let options = FitOptions {
            clip_grad_norm: config.clip_grad_norm,
            classes,
            device: device.clone(),
            ..FitOptions::new(config.epochs)
        };
        let mut replica =
            Replica::classifier(Box::new(model), store, optimizer, options).with_run_dir(out).resuming(resuming);
        if let Some(schedule) = schedule {
            replica = replica.with_schedule(schedule);
        }
        if rank == 0 {
            for callback in callbacks() {
                replica = replica.with_callback(callback);
            }
        }
        Ok(replica)
    };
    let history = if group.is_some() || devices.len() > 1 {
        drop(learner);
        let first = if let Some(group) = &group {
            let backend = crate::group::backend(&device);
            if leader {
                println!(
                    "data parallel on {} process{} ({backend}, rank 0 on {}), {} images a step in all",
                    group.world_size,
                    if group.world_size == 1 { "" } else { "es" },
                    crate::group::device(group, args.device.device),
                    group.world_size * config.batch_size
                );
            } else {
                println!(
                    "rank {} of {} on {} ({backend}): joining {}:{}",
                    group.rank,
                    group.world_size,
                    crate::group::device(group, args.device.device),
                    group.master_addr,
                    group.master_port
                );
            }
            let member = crate::group::join(group, &device)?;
            let replica = replica(group.rank, group.world_size, &device)?;
            ember_train::fit_replica(member, replica, &train_loader, Some(&val_loader))?
        } else {
            println!(
                "data parallel on {} replicas ({}), {} images a step in all",
                devices.len(),
                device_list(&args.devices),
                devices.len() * config.batch_size
            );
            let outcomes = ember_train::fit_replicated(devices.len(), &train_loader, Some(&val_loader), |rank| {
                replica(rank, devices.len(), &devices[rank])
            })?;
            outcomes.into_iter().next().context("no replica ran")?
        };
        if !leader {
            println!("rank {}: done", first.rank);
            return Ok(());
        }
        for failure in &first.callback_failures {
            eprintln!("warning: {failure}");
        }
        // Every replica ends with the same weights: the first's become the run's.
        for (name, tensor) in &first.state {
            store.assign(name, tensor)?;
        }
        first.history
    } else {
        let history = learner.fit(&train_loader, Some(&val_loader), &options)?;
        for failure in learner.failures() {
            eprintln!("warning: {failure}");
        }
        history
    };

    // The run keeps its best epoch on validation accuracy (the last when none was better).
    let best = out.join("best.safetensors");
    let kept = if best.is_file() {
        checkpoint::load(&store, &best)?;
        "best"
    } else {
        "last"
    };
    let kept_epoch = best_epoch(&history);
    let weights = out.join("model.safetensors");
    checkpoint::save_with_metadata(&store, card.to_metadata(), &weights)?;
    // The test split is scored once, here, on the kept model.
    let test = match &data.test {
        Some(test) => {
            let loader = plan.eval_loader(test.clone(), crate::data::eval_batch(input), workers)?;
            Some(ember_train::evaluate_on(&model, &loader, classes, &device)?)
        }
        None => None,
    };
    let seconds = started.elapsed().as_secs_f64();
    let info = RunInfo {
        ember_version: env!("CARGO_PKG_VERSION").to_string(),
        config: config.clone(),
        train_images: train_data.len(),
        epochs_run: history.len(),
        input: [input.0, input.1, input.2],
        classes,
        class_names: data.class_names.clone(),
        preprocessing: plan.preprocessing,
        splits: SplitsInfo::of(&data),
        kept: format!("{kept} (epoch {kept_epoch})"),
        test_accuracy: test.as_ref().map(|t| t.confusion.accuracy()),
        seconds,
    };
    info.save(&out.join("run.json"))?;
    match &test {
        Some(eval) => println!(
            "test accuracy {:.2} % on {} images ({} correct) with the {kept} epoch ({kept_epoch}), {:.1} s; weights in {}",
            eval.confusion.accuracy() * 100.0,
            eval.confusion.total(),
            (eval.confusion.accuracy() * eval.confusion.total() as f64).round(),
            seconds,
            weights.display()
        ),
        None => println!(
            "no test split in the data: kept the {kept} epoch ({kept_epoch}), {:.1} s; weights in {}",
            seconds,
            weights.display()
        ),
    }
    if args.report.json {
        let epochs: Vec<_> = history
            .iter()
            .map(|r| json!({"epoch": r.epoch, "train_loss": r.train_loss, "train_accuracy": r.train_accuracy, "val_loss": r.val_loss, "val_accuracy": r.val_accuracy, "learning_rate": r.learning_rate, "seconds": r.seconds}))
            .collect();
        let out = json!({
            "accuracy": test.as_ref().map(|t| t.confusion.accuracy()),
            "test_loss": test.as_ref().map(|t| t.loss),
            "test_images": test.as_ref().map(|t| t.confusion.total()),
            "val_images": val_data.len(),
            "train_images": train_data.len(),
            "kept_epoch": kept_epoch,
            "checkpoint": weights,
            "seconds": seconds,
            "epochs": epochs,
        });
        println!("{out}");
    }
    Ok(())
}

/// The validation fraction carved from the training images when the data has no validation
/// split.
pub const DEFAULT_VAL_SPLIT: f64 = 0.1;

/// The 1-based epoch with the best validation accuracy (the first of ties; the last epoch when
/// none was validated).
pub fn best_epoch(history: &[EpochReport]) -> usize {
    let mut best: Option<(f64, usize)> = None;
    for r in history {
        if let Some(acc) = r.val_accuracy {
            if best.is_none_or(|(b, _)| acc > b) {
                best = Some((acc, r.epoch));
            }
        }
    }
    best.map_or(history.last().map_or(0, |r| r.epoch), |(_, e)| e)
}

/// Prints where the training, validation and test examples come from.
pub fn print_splits(data: &ember_data::DataSplits) {
    println!("  train:      {}", data.origins.train);
    println!("  validation: {}", data.origins.val);
    println!("  test:       {}", data.origins.test);
    if !data.skipped.is_empty() {
        println!(
            "  skipped {} images that cannot be decoded, e.g. {}",
            data.skipped.len(),
            data.skipped[0].0.display()
        );
    }
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

/// `cpu,cuda:0` as typed (for the report).
fn device_list(devices: &[crate::device::DeviceName]) -> String {
    devices.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}
