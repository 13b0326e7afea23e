//! The resolved settings of a training run: flags over `--config` TOML over defaults, saved as
//! `RUN_DIR/config.json` so `--resume` can rebuild the same run.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::args::{OptimizerArg, ScheduleArg, TrainArgs};

/// Every setting of `ember train`, with defaults applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: String,
    pub dataset: String,
    pub data_dir: Option<PathBuf>,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub scheduler: ScheduleArg,
    pub optimizer: OptimizerArg,
    pub weight_decay: f64,
    /// SGD momentum; `None`: 0.9.
    #[serde(default)]
    pub momentum: Option<f64>,
    /// SGD with Nesterov's momentum; `None`: true.
    #[serde(default)]
    pub nesterov: Option<bool>,
    /// Dropout probability; `None`: the model's own.
    #[serde(default)]
    pub dropout: Option<f64>,
    /// Batch norm after convolutions (only vgg-small can be built without).
    #[serde(default = "yes")]
    pub batch_norm: bool,
    /// Augmentation; `None`: the default for the data (pad-crop:2 for MNIST-family digits,
    /// random resized crop and flip for image folders).
    #[serde(default)]
    pub ops: Option<String>,
    /// Model input side; `None`: the data's own size, or the model's for image folders.
    #[serde(default)]
    pub size: Option<usize>,
    /// Leave out undecodable images.
    #[serde(default)]
    pub skip_bad_images: bool,
    pub seed: u64,
    pub train_limit: Option<usize>,
    #[serde(default)]
    pub test_limit: Option<usize>,
    pub val_split: Option<f64>,
    pub early_stopping: Option<usize>,
    pub clip_grad_norm: Option<f64>,
    pub logdir: Option<PathBuf>,
    pub out: PathBuf,
}

/// The same settings, all optional, as read from a `--config` TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialConfig {
    model: Option<String>,
    dataset: Option<String>,
    data_dir: Option<PathBuf>,
    epochs: Option<usize>,
    batch_size: Option<usize>,
    lr: Option<f64>,
    scheduler: Option<ScheduleArg>,
    optimizer: Option<OptimizerArg>,
    weight_decay: Option<f64>,
    momentum: Option<f64>,
    nesterov: Option<bool>,
    dropout: Option<f64>,
    batch_norm: Option<bool>,
    ops: Option<String>,
    size: Option<usize>,
    skip_bad_images: Option<bool>,
    seed: Option<u64>,
    train_limit: Option<usize>,
    test_limit: Option<usize>,
    val_split: Option<f64>,
    early_stopping: Option<usize>,
    clip_grad_norm: Option<f64>,
    logdir: Option<PathBuf>,
    out: Option<PathBuf>,
}

/// Parses the text of a `--config` TOML file; `origin` (the file) names it in errors.
pub fn parse_toml(text: &str, origin: &Path) -> anyhow::Result<PartialConfig> {
    toml::from_str::<PartialConfig>(text).with_context(|| format!("{}: not a valid ember config", origin.display()))
}

impl TrainConfig {
    /// Flags, then the TOML file, then defaults.
    pub fn resolve(args: &TrainArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
                parse_toml(&text, path)?
            }
            None => PartialConfig::default(),
        };
        let scheduler = args.scheduler.or(file.scheduler).unwrap_or(ScheduleArg::OneCycle);
        let optimizer = args.optimizer.or(file.optimizer).unwrap_or(OptimizerArg::Adam);
        let default_lr = match (scheduler, optimizer) {
            (ScheduleArg::OneCycle, OptimizerArg::Sgd) => 0.05,
            (ScheduleArg::OneCycle, _) => 0.005,
            (_, OptimizerArg::Sgd) => 0.01,
            _ => 0.001,
        };
        let data_dir = args.data_dir.clone().or(file.data_dir);
        let config = Self {
            model: args.model.clone().or(file.model).unwrap_or_else(|| "mnist-cnn".into()),
            // With a data directory and no kind, the kind is detected from its files.
            dataset: args.dataset.clone().or(file.dataset).unwrap_or_else(|| {
                if data_dir.is_some() {
                    String::new()
                } else {
                    "mnist-sample".into()
                }
            }),
            data_dir,
            epochs: args.epochs.or(file.epochs).unwrap_or(12),
            batch_size: args.batch_size.or(file.batch_size).unwrap_or(64),
            lr: args.lr.or(file.lr).unwrap_or(default_lr),
            scheduler,
            optimizer,
            weight_decay: args.weight_decay.or(file.weight_decay).unwrap_or(if optimizer == OptimizerArg::Adamw {
                0.01
            } else {
                0.0
            }),
            momentum: args.momentum.or(file.momentum),
            nesterov: args.nesterov.or(file.nesterov),
            dropout: args.dropout.or(file.dropout),
            batch_norm: args.batch_norm.or(file.batch_norm).unwrap_or(true),
            ops: args.ops.clone().or(file.ops),
            size: args.size.or(file.size),
            skip_bad_images: args.skip_bad_images || file.skip_bad_images.unwrap_or(false),
            seed: args.seed.or(file.seed).unwrap_or(42),
            train_limit: args.train_limit.or(file.train_limit),
            test_limit: args.test_limit.or(file.test_limit),
            val_split: args.val_split.or(file.val_split),
            early_stopping: args.early_stopping.or(file.early_stopping),
            clip_grad_norm: args.clip_grad_norm.or(file.clip_grad_norm),
            logdir: args.logdir.clone().or(file.logdir),
            out: args.out.clone().or(file.out).unwrap_or_else(|| PathBuf::from("runs/latest")),
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.epochs > 0, "--epochs must be at least 1");
        anyhow::ensure!(self.batch_size > 0, "--batch-size must be at least 1");
        anyhow::ensure!(self.lr > 0.0 && self.lr.is_finite(), "--lr must be a positive number, got {}", self.lr);
        if self.optimizer != OptimizerArg::Sgd {
            for (flag, given) in [("--momentum", self.momentum.is_some()), ("--nesterov", self.nesterov.is_some())] {
                anyhow::ensure!(!given, "{flag} is a setting of --optimizer sgd, not {:?}", self.optimizer);
            }
        }
        if let Some(m) = self.momentum {
            anyhow::ensure!((0.0..1.0).contains(&m), "--momentum must be in 0..1, got {m}");
            anyhow::ensure!(
                m > 0.0 || self.nesterov != Some(true),
                "--nesterov true needs a momentum above 0 (--momentum 0 is plain gradient descent)"
            );
        }
        if let Some(p) = self.dropout {
            anyhow::ensure!((0.0..1.0).contains(&p), "--dropout must be in 0..1, got {p}");
        }
        if let Some(ops) = &self.ops {
            ember_augment::Pipeline::parse(ops)?;
        }
        if let Some(size) = self.size {
            anyhow::ensure!(
                (1..=ember_zoo::MAX_INPUT_SIDE).contains(&size),
                "--size {size} is outside 1..={}",
                ember_zoo::MAX_INPUT_SIDE
            );
        }
        if let Some(v) = self.val_split {
            anyhow::ensure!(v > 0.0 && v < 1.0, "--val-split must be between 0 and 1, got {v}");
        }
        anyhow::ensure!(
            self.weight_decay >= 0.0 && self.weight_decay.is_finite(),
            "--weight-decay must be a non-negative number, got {}",
            self.weight_decay
        );
        if let Some(norm) = self.clip_grad_norm {
            // A negative bound would reverse every gradient (gradient ascent).
            anyhow::ensure!(norm > 0.0 && norm.is_finite(), "--clip-grad-norm must be a positive number, got {norm}");
        }
        for (flag, limit) in [("--train-limit", self.train_limit), ("--test-limit", self.test_limit)] {
            anyhow::ensure!(limit != Some(0), "{flag} 0 leaves no images");
        }
        anyhow::ensure!(self.early_stopping != Some(0), "--early-stopping needs a patience of at least 1 epoch");
        Ok(())
    }

    /// Reads `dir/config.json` (for `--resume`).
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: cannot resume (no run configuration)", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a valid run configuration", path.display()))
    }

    /// The run in `dir` for `--resume`: `dir/config.json` with `out` replaced by `dir` (a copied
    /// or moved run continues where it is now and never writes to where it was) and a `logdir`
    /// that was inside the old run directory moved along with it. A settings flag must agree with
    /// the saved run; the one exception is a larger `--epochs` under a constant schedule, which
    /// extends the run.
    pub fn for_resume(dir: &Path, args: &TrainArgs) -> anyhow::Result<Self> {
        let mut config = Self::load(dir)?;
        let saved_out = std::mem::replace(&mut config.out, dir.to_path_buf());
        config.logdir = config.logdir.map(|l| match l.strip_prefix(&saved_out) {
            Ok(inside) => dir.join(inside),
            Err(_) => l,
        });
        let mut conflicts = Vec::new();
        let mut check = |flag: &str, given: Option<serde_json::Value>, saved: serde_json::Value| {
            if let Some(given) = given.filter(|g| *g != saved) {
                conflicts.push(format!("--{flag} {} (the run has {})", show(&given), show(&saved)));
            }
        };
        check("model", args.model.as_ref().map(json), json(&config.model));
        check("dataset", args.dataset.as_ref().map(json), json(&config.dataset));
        check("data-dir", args.data_dir.as_ref().map(json), json(&config.data_dir));
        check("batch-size", args.batch_size.as_ref().map(json), json(&config.batch_size));
        check("lr", args.lr.as_ref().map(json), json(&config.lr));
        check("scheduler", args.scheduler.as_ref().map(json), json(&config.scheduler));
        check("optimizer", args.optimizer.as_ref().map(json), json(&config.optimizer));
        check("weight-decay", args.weight_decay.as_ref().map(json), json(&config.weight_decay));
        check("momentum", args.momentum.as_ref().map(json), json(&config.momentum));
        check("nesterov", args.nesterov.as_ref().map(json), json(&config.nesterov));
        check("dropout", args.dropout.as_ref().map(json), json(&config.dropout));
        check("batch-norm", args.batch_norm.as_ref().map(json), json(&config.batch_norm));
        check("ops", args.ops.as_ref().map(json), json(&config.ops));
        check("size", args.size.as_ref().map(json), json(&config.size));
        check("seed", args.seed.as_ref().map(json), json(&config.seed));
        check("train-limit", args.train_limit.as_ref().map(json), json(&config.train_limit));
        check("test-limit", args.test_limit.as_ref().map(json), json(&config.test_limit));
        check("val-split", args.val_split.as_ref().map(json), json(&config.val_split));
        check("early-stopping", args.early_stopping.as_ref().map(json), json(&config.early_stopping));
        check("clip-grad-norm", args.clip_grad_norm.as_ref().map(json), json(&config.clip_grad_norm));
        check("logdir", args.logdir.as_ref().map(json), json(&config.logdir));
        if let Some(out) = &args.out {
            let same =
                |a: &Path, b: &Path| a == b || a.canonicalize().ok().is_some_and(|a| Some(a) == b.canonicalize().ok());
            if !same(out, dir) {
                check("out", Some(json(out)), json(&dir));
            }
        }
        match args.epochs {
            Some(e) if e > config.epochs && config.scheduler == ScheduleArg::Constant => config.epochs = e,
            Some(e) if e != config.epochs => conflicts.push(format!(
                "--epochs {e} (the run has {}; only a run with --scheduler constant can be extended, since the \
                 other schedules depend on the run's length)",
                config.epochs
            )),
            _ => {}
        }
        anyhow::ensure!(
            conflicts.is_empty(),
            "{}: cannot resume with {}: leave the flag out to continue the run as it was, or start a new run \
             with --out",
            dir.join("config.json").display(),
            conflicts.join(", ")
        );
        Ok(config)
    }

    /// Writes `dir/config.json` atomically.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        let path = dir.join("config.json");
        ember_train::checkpoint::write_atomically(&path, |tmp| {
            std::fs::write(tmp, &text).map_err(|source| ember_train::Error::Io { path: tmp.to_path_buf(), source })
        })?;
        Ok(())
    }
}

fn yes() -> bool {
    true
}

fn json<T: Serialize + ?Sized>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// A value as a flag would spell it: strings and paths bare, an absent setting as `none`.
fn show(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "none".into(),
        v => v.to_string(),
    }
}
