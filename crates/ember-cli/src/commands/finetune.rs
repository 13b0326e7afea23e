//! `ember finetune`: transfer a pretrained zoo model to a labelled dataset (fine-tune, linear
//! probe, LoRA), or train the same network from scratch on the same data for comparison. A
//! fine-tune is a run like `ember train`'s: the same run directory, resumable, with early
//! stopping, clipping, logs and plots, and a checkpoint that `eval`, `predict`, `ensemble` and a
//! further `finetune` use on its own.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use ember_data::{per_class_subset, ColorMode, DataLoader, Subset};
use ember_finetune::{
    discriminative_rates, freeze_batch_norms, linear_probe, param_groups, recalibrate_batch_norms, train_lora,
    FineTuneConfig, FineTuneModel, LoraConfig, LoraModel, RenameRule,
};
use ember_optim::{Adam, AdamConfig, OneCycle, ParamGroup};
use ember_train::callback::OnEpoch;
use ember_train::{
    checkpoint, evaluate_on, CsvLogger, EarlyStopping, EpochReport, FitOptions, Learner, Mode, ModelCheckpoint,
    PlotLogger, TensorBoardLogger,
};
use ember_zoo::{ModelCard, ModelOptions};
use serde_json::json;

use crate::args::{FineTuneArgs, FineTuneMode};
use crate::data::InputPlan;
use crate::progress::EpochProgress;
use crate::run_info::SplitsInfo;

fn print_epoch(r: &EpochReport) {
    let val = r.val_accuracy.map(|a| format!("  val_acc {a:.4}")).unwrap_or_default();
    println!(
        "epoch {:>2}/{}  train_loss {:.4}  train_acc {:.4}{val}  lr {:.2e}  {:.1}s",
        r.epoch, r.epochs, r.train_loss, r.train_accuracy, r.learning_rate, r.seconds
    );
}

/// The settings of the run: the flags, or with `--resume DIR` the ones saved in
/// `DIR/config.json` (with `out` set to `DIR`).
fn settings(given: &FineTuneArgs) -> anyhow::Result<FineTuneArgs> {
    let Some(dir) = &given.resume else { return Ok(given.clone()) };
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot resume (no fine-tune configuration)", path.display()))?;
    let mut saved: FineTuneArgs = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a valid fine-tune configuration", path.display()))?;
    saved.out = dir.clone();
    saved.resume = Some(dir.clone());
    saved.report = given.report;
    Ok(saved)
}

fn save_settings(args: &FineTuneArgs, dir: &Path) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(args)?;
    checkpoint::write_atomically(&dir.join("config.json"), |tmp| {
        std::fs::write(tmp, &text)
            .map_err(|source| ember_train::Error::Io(ember_train::IoError { path: tmp.to_path_buf(), source }))
    })?;
    Ok(())
}

pub fn run(given: &FineTuneArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let args = settings(given)?;
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
    anyhow::ensure!(args.val_split > 0.0 && args.val_split < 1.0, "--val-split must lie strictly between 0 and 1");
    let info = ember_zoo::info(&args.model)?;
    let channels = args.in_chans.unwrap_or(info.input.0);
    let side = args.size.map_or(info.input.1, |s| s as usize);
    // Without a data directory, the few-shot Fashion-MNIST experiment of wave 1.
    let by_name = args.data.data_dir.is_none();
    let dataset = args.data.dataset.clone().or_else(|| by_name.then(|| "fashion-mnist".to_string()));
    let mut data = crate::data::open(
        dataset.as_deref(),
        args.data.data_dir.as_deref(),
        ColorMode::for_channels(channels),
        args.skip_bad_images,
    )?;
    if let Some(per_class) = args.per_class.or(by_name.then_some(100)) {
        let indices = per_class_subset(data.train.as_ref(), per_class, args.seed)?;
        data.origins.train = format!("{}, {per_class} per class (seed {})", data.origins.train, args.seed);
        data.train = std::sync::Arc::new(Subset::new(data.train.clone(), indices)?);
    }
    if let Some(limit) = args.test_limit {
        data.limit_test(limit)?;
    }
    data.carve_validation(args.val_split, args.seed)?;
    let classes = data.classes();
    let plan = InputPlan::new(&data, channels, side, info.preprocessing)?;
    let workers = crate::data::workers();
    let ops = plan.train_ops(args.ops.as_deref(), "none");
    let train = plan.train_loader(data.train.clone(), args.batch_size, args.seed, &ops, workers)?;
    let val_data = data.val.clone().context("no validation split")?;
    let val = plan.eval_loader(val_data.clone(), args.eval_batch_size, workers)?;

    let options = ModelOptions { seed: args.seed, ..ModelOptions::new(plan.input, classes) };
    let device = args.device.open()?;
    let fresh = || -> anyhow::Result<FineTuneModel> {
        Ok(FineTuneModel::scratch_on(&args.model, &options, args.seed, &device, candle_core::DType::F32)?)
    };
    let mut model = match (&args.weights, args.mode) {
        (_, FineTuneMode::Scratch) => fresh()?,
        (Some(w), _) => {
            let rules: Vec<RenameRule> = ember_finetune::parse_rules(&args.rename.rename)?;
            fresh()?.with_weights(w, &rules)?
        }
        (None, _) => anyhow::bail!("--weights is needed for --mode {:?} (only scratch trains without)", args.mode),
    };
    let card = ModelCard {
        model: args.model.clone(),
        input: plan.input,
        class_names: data.class_names.clone(),
        preprocessing: plan.preprocessing,
        batch_norm: true,
    };
    let total: usize = model.store.num_parameters();
    let out = args.out.clone();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    checkpoint::remove_stale_temporaries(&out)?;
    save_settings(&args, &out)?;
    let resuming = args.resume.is_some() && out.join(ember_train::RESUME_FILE).is_file();
    println!(
        "{:?} {} ({}x{}x{} input, {classes} classes) on {} data; {}",
        args.mode,
        args.model,
        plan.input.0,
        plan.input.1,
        plan.input.2,
        data.kind,
        if model.report.loaded.is_empty() { "fresh weights".to_string() } else { model.report.summary() }
    );
    super::train::print_splits(&data);
    let print_head = |r: &ember_finetune::FineTuneReport| {
        for e in &r.head {
            println!("head epoch {:>2}  train_loss {:.4}  train_acc {:.4}", e.epoch, e.loss, e.accuracy);
        }
    };
    let mut on_epoch = |r: &EpochReport| print_epoch(r);
    let run = RunDir { out: &out, card: &card, args: &args, classes };
    let (trainable, history, saved) = match args.mode {
        FineTuneMode::Scratch => {
            let groups = param_groups(&model.store, &[], &[]);
            let epochs = args.head_epochs + args.epochs;
            let history = run.fit(&mut model, groups, epochs, args.lr, &train, &val, resuming)?;
            (total, history, run.keep_best(&model)?)
        }
        FineTuneMode::FineTune => {
            if resuming {
                println!("resuming {} in the full phase (the head phase is done)", out.display());
            } else if args.head_epochs > 0 {
                print_head(&linear_probe(&mut model, &train, None, &cfg, &mut on_epoch)?);
            }
            let history = if args.epochs > 0 {
                let all_batch_norms = if args.freeze_bn { vec!["*".to_string()] } else { Vec::new() };
                freeze_batch_norms(&mut model.network, &all_batch_norms);
                let rates = discriminative_rates(&model.head, &model.store, cfg.layer_groups, args.lr, args.lr_ratio);
                let groups = param_groups(&model.store, &[], &rates);
                let history = run.fit(&mut model, groups, args.epochs, args.lr, &train, &val, resuming)?;
                freeze_batch_norms(&mut model.network, &[]);
                history
            } else {
                Vec::new()
            };
            (total, history, run.keep_best(&model)?)
        }
        FineTuneMode::Probe => {
            print_head(&linear_probe(&mut model, &train, None, &cfg, &mut on_epoch)?);
            let head = model.store.names().into_iter().filter(|n| n.starts_with(&format!("{}.", model.head.head)));
            let trainable = head.filter_map(|n| model.store.get(&n)).map(|v| v.elem_count()).sum();
            (trainable, Vec::new(), run.keep_best(&model)?)
        }
        FineTuneMode::Lora => {
            if args.head_epochs > 0 {
                print_head(&linear_probe(&mut model, &train, None, &cfg, &mut on_epoch)?);
            }
            let lora_cfg = LoraConfig {
                rank: args.lora_rank,
                alpha: args.lora_alpha,
                dropout: args.lora_dropout,
                targets: lora_targets(args.lora_targets.as_deref(), &args.model, &model),
                train_also: vec![model.head.pattern()],
                frozen_batch_norms: !args.lora_train_bn_stats,
                seed: args.seed,
            };
            let lora = LoraModel::new(model, lora_cfg)?;
            println!("LoRA on {} layers: {} trainable of {total} parameters", lora.num_targets(), lora.num_trainable());
            let history = train_lora(&lora, &train, Some(&val), &cfg, &mut on_epoch)?;
            let path = out.join("adapter.safetensors");
            lora.save_adapters(&path)?;
            let test = match &data.test {
                Some(t) => Some(evaluate_on(
                    &lora,
                    &plan.eval_loader(t.clone(), args.eval_batch_size, workers)?,
                    classes,
                    &device,
                )?),
                None => None,
            };
            return finish(&args, &data, &plan, started, lora.num_trainable(), total, &history, test, path, &train);
        }
    };
    if args.recalibrate_bn > 0 {
        recalibrate_batch_norms(&mut model, &train, args.recalibrate_bn)?;
        checkpoint::save_with_metadata(&model.store, card.to_metadata(), &saved)?;
    }
    // The test split is scored once, on the model the run keeps.
    let test = match &data.test {
        Some(t) => {
            Some(evaluate_on(&model, &plan.eval_loader(t.clone(), args.eval_batch_size, workers)?, classes, &device)?)
        }
        None => None,
    };
    finish(&args, &data, &plan, started, trainable, total, &history, test, saved, &train)
}

/// Where a fine-tune run writes, and what its checkpoints carry.
struct RunDir<'a> {
    out: &'a Path,
    card: &'a ModelCard,
    args: &'a FineTuneArgs,
    classes: usize,
}

impl RunDir<'_> {
    /// Trains every parameter in `groups` for `epochs` (AdamW, one-cycle peaking at `lr`) with
    /// the run directory's callbacks; continues a committed epoch when `resuming`.
    #[allow(clippy::too_many_arguments)]
    fn fit(
        &self,
        model: &mut FineTuneModel,
        groups: Vec<ParamGroup>,
        epochs: usize,
        lr: f64,
        train: &DataLoader,
        val: &DataLoader,
        resuming: bool,
    ) -> anyhow::Result<Vec<EpochReport>> {
        let mut opt =
            Adam::with_groups(groups, AdamConfig { lr, weight_decay: self.args.weight_decay, ..AdamConfig::adamw() })?;
        let schedule = OneCycle::new(lr, (epochs * train.num_batches()).max(1));
        let names = self.card.class_names.clone();
        let model: &FineTuneModel = model;
        let mut learner = Learner::new(model, &model.store, &mut opt)
            .with_run_dir(self.out)
            .with_callback(EpochProgress::new())
            .with_callback(OnEpoch(print_epoch))
            .with_callback(
                ModelCheckpoint::new(self.out, "val_accuracy", Mode::Max).with_metadata(self.card.to_metadata()),
            )
            .with_callback(CsvLogger::new(self.out.join("metrics.csv")))
            .with_callback(PlotLogger::new(self.out, names.clone()))
            .with_callback(TensorBoardLogger::new(self.out.join("tensorboard"), 10).with_class_names(names));
        if let Some(patience) = self.args.early_stopping {
            learner =
                learner.with_callback(EarlyStopping::new("val_accuracy", Mode::Max, patience).with_restore_best(true));
        }
        if resuming {
            learner.resume(self.out)?;
            println!("resuming after epoch {} of {epochs}", learner.history().len());
        }
        let options = FitOptions {
            schedule: Some(&schedule),
            clip_grad_norm: self.args.clip_grad_norm,
            classes: self.classes,
            device: model.device().clone(),
            ..FitOptions::new(epochs)
        };
        let history = learner.fit(train, Some(val), &options)?;
        for failure in learner.failures() {
            eprintln!("warning: {failure}");
        }
        Ok(history)
    }

    /// Loads the best epoch's weights when there is a `best.safetensors`, and writes the kept
    /// model with its card to `model.safetensors`.
    fn keep_best(&self, model: &FineTuneModel) -> anyhow::Result<PathBuf> {
        let best = self.out.join("best.safetensors");
        if best.is_file() {
            checkpoint::load(&model.store, &best)?;
        }
        let path = self.out.join("model.safetensors");
        checkpoint::save_with_metadata(&model.store, self.card.to_metadata(), &path)?;
        Ok(path)
    }
}

/// Prints the result line and writes run.json (and the JSON line with `--json`).
#[allow(clippy::too_many_arguments)]
fn finish(
    args: &FineTuneArgs,
    data: &ember_data::DataSplits,
    plan: &InputPlan,
    started: Instant,
    trainable: usize,
    total: usize,
    history: &[EpochReport],
    test: Option<ember_train::Evaluation>,
    saved: PathBuf,
    train: &DataLoader,
) -> anyhow::Result<()> {
    let fraction = trainable as f64 / total as f64;
    let accuracy = test.as_ref().map(|t| t.confusion.accuracy());
    let test_images = test.as_ref().map_or(0, |t| t.confusion.total());
    let seconds = started.elapsed().as_secs_f64();
    let kept_epoch = super::train::best_epoch(history);
    match accuracy {
        Some(a) => println!(
            "test accuracy {:.2} % ({test_images} images); {trainable} of {total} parameters trained ({:.2} %); {seconds:.0} s; saved {}",
            a * 100.0,
            fraction * 100.0,
            saved.display()
        ),
        None => println!("no test split; {trainable} of {total} parameters trained; {seconds:.0} s; saved {}", saved.display()),
    }
    let run = json!({
        "ember_version": env!("CARGO_PKG_VERSION"),
        "command": "finetune",
        "mode": args.mode,
        "model": args.model,
        "weights": args.weights,
        "dataset": data.kind.name(),
        "data_dir": args.data.data_dir,
        "input": [plan.input.0, plan.input.1, plan.input.2],
        "classes": data.classes(),
        "class_names": data.class_names,
        "preprocessing": plan.preprocessing,
        "splits": SplitsInfo::of(data),
        "train_images": train.dataset().len(),
        "epochs_run": history.len(),
        "kept": if history.is_empty() {
            "the head phase's last epoch".to_string()
        } else {
            format!("epoch {kept_epoch} of the full phase (best validation accuracy)")
        },
        "test_accuracy": accuracy,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "seconds": seconds,
    });
    let path = args.out.join("run.json");
    let text = serde_json::to_string_pretty(&run)?;
    checkpoint::write_atomically(&path, |tmp| {
        std::fs::write(tmp, &text)
            .map_err(|source| ember_train::Error::Io(ember_train::IoError { path: tmp.to_path_buf(), source }))
    })?;
    if args.report.json {
        println!(
            "{}",
            json!({
                "mode": args.mode, "model": args.model, "per_class": args.per_class,
                "size": plan.input.1, "train_images": train.dataset().len(), "test_images": test_images,
                "accuracy": accuracy, "trainable_parameters": trainable, "total_parameters": total,
                "trainable_fraction": fraction, "seconds": seconds, "saved": saved,
            })
        );
    }
    Ok(())
}

/// The LoRA targets: the user's patterns, else EfficientNet-Lite's measured choice (its 1x1
/// expand and project convolutions and the conv head), else every layer of the model with a
/// 2-D or 4-D weight except the head (which trains in full), so LoRA works on any model.
fn lora_targets(given: Option<&str>, model_name: &str, model: &FineTuneModel) -> Vec<String> {
    if let Some(given) = given {
        return given.split(',').map(|s| s.trim().to_string()).collect();
    }
    let lite = ember_zoo::info(model_name)
        .is_ok_and(|m| matches!(m.architecture, ember_zoo::Architecture::EfficientNetLite(_)));
    if lite {
        return ["*_expand_conv", "*_project_conv", "_conv_head"].map(String::from).to_vec();
    }
    let head = format!("{}.", model.head.head);
    model
        .store
        .vars()
        .into_iter()
        .filter(|(name, var)| !name.starts_with(&head) && matches!(var.dims().len(), 2 | 4))
        .filter_map(|(name, _)| name.strip_suffix(".weight").map(str::to_string))
        .collect()
}
