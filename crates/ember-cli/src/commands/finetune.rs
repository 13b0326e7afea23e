//! `ember finetune`: transfer a pretrained zoo model to a small labelled dataset (fine-tune,
//! linear probe, LoRA), or train the same network from scratch on the same data for comparison.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use candle_nn::ModuleT;
use ember_augment::Pipeline;
use ember_data::{per_class_subset, DataLoader, Dataset, KnownDataset, Split, Subset};
use ember_finetune::{
    fine_tune, linear_probe, recalibrate_batch_norms, train_with_frozen, FineTuneConfig, FineTuneModel, GreyToRgb,
    LoraConfig, LoraModel, RenameRule,
};
use ember_optim::{Adam, AdamConfig, OneCycle, ParamGroup};
use ember_train::{evaluate, EpochReport, FitOptions};
use ember_zoo::ModelOptions;
use serde_json::json;

use crate::args::{FineTuneArgs, FineTuneMode};

fn print_epoch(r: &EpochReport) {
    let val = r.val_accuracy.map(|a| format!("  val_acc {a:.4}")).unwrap_or_default();
    println!(
        "epoch {:>2}/{}  train_loss {:.4}  train_acc {:.4}{val}  lr {:.2e}  {:.1}s",
        r.epoch, r.epochs, r.train_loss, r.train_accuracy, r.learning_rate, r.seconds
    );
}

pub fn run(args: &FineTuneArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let cfg = FineTuneConfig {
        head_epochs: args.head_epochs,
        epochs: args.epochs,
        head_lr: args.head_lr,
        lr: args.lr,
        lr_ratio: args.lr_ratio,
        weight_decay: args.weight_decay,
        cache_features: !args.no_cache,
        frozen_batch_norms: args.freeze_bn,
        seed: args.seed,
        ..FineTuneConfig::default()
    };
    cfg.validate()?;
    let dataset: KnownDataset = args.dataset.parse()?;
    let train_full = Arc::new(super::load_split(dataset, args.data_dir.as_deref(), Split::Train)?);
    let indices = per_class_subset(train_full.as_ref(), args.per_class, args.seed)?;
    let classes = train_full.classes();
    let info = ember_zoo::info(&args.model)?;
    let channels = info.input.0;
    // 3-channel models get upscaled RGB copies; others the images as they are.
    let (height, width) = if channels == 3 {
        (args.size as usize, args.size as usize)
    } else {
        (train_full.height(), train_full.width())
    };
    let wrap = |d: Arc<dyn Dataset>| -> anyhow::Result<Arc<dyn Dataset>> {
        Ok(if channels == 3 { Arc::new(GreyToRgb::new(d, args.size)?) } else { d })
    };
    let train_data = wrap(Arc::new(Subset::new(train_full, indices)?))?;
    let mut test_set: Arc<dyn Dataset> = Arc::new(super::load_split(dataset, args.data_dir.as_deref(), Split::Test)?);
    if let Some(limit) = args.test_limit {
        test_set = Arc::new(Subset::new(test_set.clone(), (0..limit.min(test_set.len())).collect())?);
    }
    let test_data = wrap(test_set)?;
    let n_train = train_data.len();
    let mut train = DataLoader::new(train_data, args.batch_size).with_shuffle(args.seed).with_workers(1);
    let pipeline = Pipeline::parse(&args.ops)?;
    if !pipeline.is_identity() {
        train = train.with_rgb_transform(Arc::new(pipeline.clone())).with_transform(Arc::new(pipeline));
    }
    let test = DataLoader::new(test_data, args.eval_batch_size).with_workers(1);

    let options = ModelOptions { seed: args.seed, ..ModelOptions::new((channels, height, width), classes) };
    let mut model = match (&args.weights, args.mode) {
        (_, FineTuneMode::Scratch) => FineTuneModel::scratch(&args.model, &options, args.seed)?,
        (Some(w), _) => {
            let rules: Vec<RenameRule> = args.rename.iter().map(|r| RenameRule::parse(r)).collect::<Result<_, _>>()?;
            FineTuneModel::pretrained(&args.model, &options, w, &rules, args.seed)?
        }
        (None, _) => anyhow::bail!("--weights is needed for --mode {:?} (only scratch trains without)", args.mode),
    };
    let total: usize = model.store.num_parameters();
    println!(
        "{:?} {} on {} images ({} per class, {height}x{width}), test {} images; {}",
        args.mode,
        args.model,
        n_train,
        args.per_class,
        test.dataset().len(),
        if model.report.loaded.is_empty() { "fresh weights".to_string() } else { model.report.summary() }
    );
    let mut on_epoch = |r: &EpochReport| print_epoch(r);
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let print_head = |r: &ember_finetune::FineTuneReport| {
        for e in &r.head {
            println!("head epoch {:>2}  train_loss {:.4}  train_acc {:.4}", e.epoch, e.loss, e.accuracy);
        }
    };
    let (trainable, accuracy, saved) = match args.mode {
        FineTuneMode::Scratch => {
            let epochs = args.head_epochs + args.epochs;
            train_with_frozen(&mut model, &[], &train, None, epochs, args.lr, args.weight_decay, &mut on_epoch)?;
            (total, test_full(&mut model, args, &train, &test)?, save_model(&model, args)?)
        }
        FineTuneMode::FineTune => {
            print_head(&fine_tune(&mut model, &train, None, &cfg, &mut on_epoch)?);
            (total, test_full(&mut model, args, &train, &test)?, save_model(&model, args)?)
        }
        FineTuneMode::Probe => {
            print_head(&linear_probe(&mut model, &train, None, &cfg, &mut on_epoch)?);
            let head = model.store.names().into_iter().filter(|n| n.starts_with(&format!("{}.", model.head.head)));
            let trainable = head.filter_map(|n| model.store.get(&n)).map(|v| v.elem_count()).sum();
            (trainable, test_accuracy(&model, &test, classes)?, save_model(&model, args)?)
        }
        FineTuneMode::Lora => {
            if args.head_epochs > 0 {
                print_head(&linear_probe(&mut model, &train, None, &cfg, &mut on_epoch)?);
            }
            let lora_cfg = LoraConfig {
                rank: args.lora_rank,
                alpha: args.lora_alpha,
                dropout: args.lora_dropout,
                targets: args.lora_targets.split(',').map(|s| s.trim().to_string()).collect(),
                train_also: vec![model.head.pattern()],
                frozen_batch_norms: !args.lora_train_bn_stats,
                seed: args.seed,
            };
            let lora = LoraModel::new(model, lora_cfg)?;
            println!("LoRA on {} layers: {} trainable of {total} parameters", lora.num_targets(), lora.num_trainable());
            let groups = vec![ParamGroup::all(lora.trainable())];
            let mut opt = Adam::with_groups(
                groups,
                AdamConfig { lr: args.lr, weight_decay: args.weight_decay, ..AdamConfig::adamw() },
            )?;
            let schedule = OneCycle::new(args.lr, (args.epochs * train.num_batches()).max(1));
            let fit = FitOptions { classes, ..FitOptions::new(args.epochs).with_schedule(&schedule) };
            ember_train::fit(&lora, &mut opt, &train, None, &fit, print_epoch)?;
            let accuracy = test_accuracy(&lora, &test, classes)?;
            let path = args.out.join("adapter.safetensors");
            lora.save_adapters(&path)?;
            (lora.num_trainable(), accuracy, path)
        }
    };
    let fraction = trainable as f64 / total as f64;
    println!(
        "test accuracy {:.2} % ({} images); {trainable} of {total} parameters trained ({:.2} %); {:.0} s; saved {}",
        accuracy * 100.0,
        test.dataset().len(),
        fraction * 100.0,
        started.elapsed().as_secs_f64(),
        saved.display()
    );
    if args.json {
        println!(
            "{}",
            json!({
                "mode": format!("{:?}", args.mode).to_lowercase(), "model": args.model, "per_class": args.per_class,
                "size": args.size, "train_images": n_train, "test_images": test.dataset().len(), "accuracy": accuracy,
                "trainable_parameters": trainable, "total_parameters": total, "trainable_fraction": fraction,
                "seconds": started.elapsed().as_secs_f64(), "saved": saved,
            })
        );
    }
    Ok(())
}

fn test_accuracy(model: &dyn ModuleT, test: &DataLoader, classes: usize) -> anyhow::Result<f64> {
    Ok(evaluate(model, test, classes)?.confusion.accuracy())
}

/// Recalibrates batch norms (`--recalibrate-bn`) and tests.
fn test_full(
    model: &mut FineTuneModel,
    args: &FineTuneArgs,
    train: &DataLoader,
    test: &DataLoader,
) -> anyhow::Result<f64> {
    if args.recalibrate_bn > 0 {
        recalibrate_batch_norms(model, train, args.recalibrate_bn)?;
    }
    test_accuracy(&*model, test, model.options.classes)
}

fn save_model(model: &FineTuneModel, args: &FineTuneArgs) -> anyhow::Result<std::path::PathBuf> {
    let path = args.out.join("model.safetensors");
    ember_train::checkpoint::save_tensors(&model.store.state(), &path)?;
    Ok(path)
}
