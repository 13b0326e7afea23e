//! `ember train`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device};
use ember_augment::RandomCrop;
use ember_data::{DataLoader, KnownDataset, Split};
use ember_layers::ParamStore;
use ember_optim::{Adam, AdamConfig, OneCycle};
use ember_train::{checkpoint, evaluate, fit, EpochReport, FitOptions};
use serde_json::json;

use crate::args::{ScheduleArg, TrainArgs};
use crate::run_info::RunInfo;

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let dataset: KnownDataset = args.dataset.parse()?;
    let data_dir = args.data_dir.as_deref();
    let mut train_set = super::load_split(dataset, data_dir, Split::Train)?;
    if let Some(limit) = args.train_limit {
        let n = limit.min(train_set.len());
        train_set = train_set.select(&(0..n).collect::<Vec<_>>())?;
    }
    let mut test_set = super::load_split(dataset, data_dir, Split::Test)?;
    if let Some(limit) = args.test_limit {
        let n = limit.min(test_set.len());
        test_set = test_set.select(&(0..n).collect::<Vec<_>>())?;
    }
    anyhow::ensure!(args.epochs > 0, "--epochs must be at least 1");
    let lr = args.lr.unwrap_or(match args.schedule {
        ScheduleArg::OneCycle => 0.005,
        ScheduleArg::Constant => 0.001,
    });
    anyhow::ensure!(lr > 0.0 && lr.is_finite(), "--lr must be a positive number, got {lr}");

    let device = Device::Cpu;
    let store = ParamStore::new(args.seed, &device);
    anyhow::ensure!(
        ember_zoo::info(&args.model)?.task == ember_zoo::Task::Classification,
        "`{}` is not a classifier (train VAEs with `ember vae train`)",
        args.model
    );
    let input = (1, train_set.height(), train_set.width());
    let model_options =
        ember_zoo::ModelOptions { seed: args.seed, ..ember_zoo::ModelOptions::new(input, train_set.classes()) };
    let model = ember_zoo::build_with(&args.model, &model_options, store.var_builder(DType::F32))?;
    let mut adam = Adam::new(store.vars(), AdamConfig { lr, ..AdamConfig::default() })?;

    let (classes, n_train, n_test) = (train_set.classes(), train_set.len(), test_set.len());
    let crop = RandomCrop::new(train_set.width() as u32, train_set.height() as u32).with_padding(args.pad_crop);
    let mut train_loader =
        DataLoader::new(Arc::new(train_set), args.batch_size).with_shuffle(args.seed).with_workers(1);
    if args.pad_crop > 0 {
        train_loader = train_loader.with_transform(Arc::new(crop));
    }
    let test_loader = DataLoader::new(Arc::new(test_set), 500);

    let one_cycle = OneCycle::new(lr, args.epochs * train_loader.num_batches());
    let mut options = FitOptions::new(args.epochs);
    options.classes = classes;
    if args.schedule == ScheduleArg::OneCycle {
        options = options.with_schedule(&one_cycle);
    }

    println!(
        "training {} on {} ({} train / {} test images), {} parameters, {} epochs, batch {}, lr {} ({:?}), seed {}",
        args.model,
        data_dir.map_or_else(|| dataset.to_string(), |d| d.display().to_string()),
        n_train,
        n_test,
        store.num_parameters(),
        args.epochs,
        args.batch_size,
        lr,
        args.schedule,
        args.seed
    );
    let history = fit(&model, &mut adam, &train_loader, Some(&test_loader), &options, print_epoch)?;

    std::fs::create_dir_all(&args.out).with_context(|| format!("creating run directory {}", args.out.display()))?;
    let weights = args.out.join("model.safetensors");
    checkpoint::save(&store, &weights)?;
    let eval = evaluate(&model, &test_loader, classes)?;
    let accuracy = eval.confusion.accuracy();
    let seconds = started.elapsed().as_secs_f64();
    let info = RunInfo {
        ember_version: env!("CARGO_PKG_VERSION").to_string(),
        model: args.model.clone(),
        dataset: dataset.to_string(),
        data_dir: args.data_dir.clone(),
        train_images: n_train,
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr,
        schedule: args.schedule,
        pad_crop: args.pad_crop,
        seed: args.seed,
        input: Some([input.0, input.1, input.2]),
        classes: Some(classes),
        test_accuracy: accuracy,
        seconds,
    };
    info.save(&args.out.join("run.json"))?;
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
