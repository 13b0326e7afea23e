//! The resolved settings of a training run: flags over `--config` TOML over defaults, saved as
//! `RUN_DIR/config.json` so `--resume` can rebuild the same run.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ember_optim::{OptimizerConfig, OptimizerKind, ScheduleConfig};
use serde::{Deserialize, Serialize};

use crate::args::{OptimizerArg, ScheduleArg, TrainArgs, TrainSettings};

/// Every setting of `ember train`, with defaults applied. The optimizer and schedule are
/// ember-optim's typed configs, flattened, so config.json names them as the flags do
/// (`"optimizer": "sgd"`, `"momentum": 0.9`, `"scheduler": "cosine"`, ...). Unknown entries are
/// not refused: serde cannot tell them from the flattened configs' own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub model: String,
    pub dataset: String,
    pub data_dir: Option<PathBuf>,
    pub epochs: usize,
    pub batch_size: usize,
    /// The update rule, its learning rate (a schedule's peak or start) and the rest.
    #[serde(flatten)]
    pub optimizer: OptimizerConfig,
    /// How the learning rate moves over the run.
    #[serde(flatten)]
    pub schedule: ScheduleConfig,
    /// Dropout probability; `None`: the model's own.
    pub dropout: Option<f64>,
    /// Batch norm after convolutions (only vgg-small can be built without).
    #[serde(default = "yes")]
    pub batch_norm: bool,
    /// Augmentation; `None`: the default for the data (pad-crop:2 for MNIST-family digits,
    /// random resized crop and flip for image folders).
    pub ops: Option<String>,
    /// Model input side; `None`: the data's own size, or the model's for image folders.
    pub size: Option<usize>,
    /// Leave out undecodable images.
    #[serde(default)]
    pub skip_bad_images: bool,
    pub seed: u64,
    pub train_limit: Option<usize>,
    pub test_limit: Option<usize>,
    pub val_split: Option<f64>,
    pub early_stopping: Option<usize>,
    pub clip_grad_norm: Option<f64>,
    pub logdir: Option<PathBuf>,
    pub out: PathBuf,
}

/// Parses the text of a `--config` TOML file; `origin` (the file) names it in errors.
pub fn parse_toml(text: &str, origin: &Path) -> anyhow::Result<TrainSettings> {
    toml::from_str::<TrainSettings>(text).with_context(|| format!("{}: not a valid ember config", origin.display()))
}

impl TrainConfig {
    /// Flags, then the TOML file, then defaults.
    pub fn resolve(args: &TrainArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
                parse_toml(&text, path)?
            }
            None => TrainSettings::default(),
        };
        let given = args.settings.clone().or(file);
        let schedule = given.scheduler.unwrap_or(ScheduleArg::OneCycle).config();
        let optimizer = optimizer(&given, &schedule)?;
        let config = Self {
            model: given.model.unwrap_or_else(|| ember_zoo::DEFAULT_CLASSIFIER.into()),
            // With a data directory and no kind, the kind is detected from its files.
            dataset: given.dataset.unwrap_or_else(|| {
                if given.data_dir.is_some() {
                    String::new()
                } else {
                    "mnist-sample".into()
                }
            }),
            data_dir: given.data_dir,
            epochs: given.epochs.unwrap_or(12),
            batch_size: given.batch_size.unwrap_or(64),
            optimizer,
            schedule,
            dropout: given.dropout,
            batch_norm: given.batch_norm.unwrap_or(true),
            ops: given.ops,
            size: given.size,
            skip_bad_images: given.skip_bad_images,
            seed: given.seed.unwrap_or(42),
            train_limit: given.train_limit,
            test_limit: given.test_limit,
            val_split: given.val_split,
            early_stopping: given.early_stopping,
            clip_grad_norm: given.clip_grad_norm,
            logdir: given.logdir,
            out: given.out.unwrap_or_else(|| PathBuf::from("runs/latest")),
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.epochs > 0, "--epochs must be at least 1");
        anyhow::ensure!(self.batch_size > 0, "--batch-size must be at least 1");
        let lr = self.optimizer.lr();
        anyhow::ensure!(lr > 0.0 && lr.is_finite(), "--lr must be a positive number, got {lr}");
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
        let weight_decay = self.optimizer.weight_decay();
        anyhow::ensure!(
            weight_decay >= 0.0 && weight_decay.is_finite(),
            "--weight-decay must be a non-negative number, got {weight_decay}"
        );
        if let Some(norm) = self.clip_grad_norm {
            // A negative bound would reverse every gradient (gradient ascent).
            anyhow::ensure!(norm > 0.0 && norm.is_finite(), "--clip-grad-norm must be a positive number, got {norm}");
        }
        for (flag, limit) in [("--train-limit", self.train_limit), ("--test-limit", self.test_limit)] {
            anyhow::ensure!(limit != Some(0), "{flag} 0 leaves no images");
        }
        anyhow::ensure!(self.early_stopping != Some(0), "--early-stopping needs a patience of at least 1 epoch");
        // ember-optim's own rules, for anything the flags above do not cover.
        self.optimizer.validate()?;
        self.schedule.validate()?;
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
        // A flag agrees with the run when it equals the saved setting of the same name (the
        // settings and config.json share their names). `--epochs` and `--out` have rules of
        // their own below; `--skip-bad-images` is a switch that cannot be compared as "given".
        let mut conflicts = Vec::new();
        let saved = json(&config);
        let given = &args.settings;
        if let serde_json::Value::Object(flags) = json(given) {
            for (setting, value) in flags {
                if value.is_null() || ["epochs", "out", "skip_bad_images"].contains(&setting.as_str()) {
                    continue;
                }
                let saved = saved.get(&setting).cloned().unwrap_or(serde_json::Value::Null);
                if value != saved {
                    conflicts.push(format!(
                        "--{} {} (the run has {})",
                        setting.replace('_', "-"),
                        show(&value),
                        show(&saved)
                    ));
                }
            }
        }
        if let Some(out) = &given.out {
            let same =
                |a: &Path, b: &Path| a == b || a.canonicalize().ok().is_some_and(|a| Some(a) == b.canonicalize().ok());
            if !same(out, dir) {
                conflicts.push(format!("--out {} (the run has {})", out.display(), dir.display()));
            }
        }
        match given.epochs {
            Some(e) if e > config.epochs && !config.schedule.depends_on_length() => config.epochs = e,
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
            std::fs::write(tmp, &text)
                .map_err(|source| ember_train::Error::Io(ember_train::IoError { path: tmp.to_path_buf(), source }))
        })?;
        Ok(())
    }
}

/// The optimizer the settings name: ember-optim's recipe for the rule, at the given (or the
/// recipe's) learning rate, with the weight decay, momentum and Nesterov flags that were given.
/// Flags that do not apply to the rule are refused rather than ignored.
fn optimizer(given: &TrainSettings, schedule: &ScheduleConfig) -> anyhow::Result<OptimizerConfig> {
    let arg = given.optimizer.unwrap_or(OptimizerArg::Adam);
    let kind = OptimizerKind::from(arg);
    let mut config = OptimizerConfig::recipe(kind, given.lr.unwrap_or(kind.default_lr(schedule)));
    if let Some(weight_decay) = given.weight_decay {
        config = config.with_weight_decay(weight_decay);
    }
    let OptimizerConfig::Sgd(sgd) = &mut config else {
        for (flag, set) in [("--momentum", given.momentum.is_some()), ("--nesterov", given.nesterov.is_some())] {
            anyhow::ensure!(!set, "{flag} is a setting of --optimizer sgd, not {arg:?}");
        }
        return Ok(config);
    };
    if let Some(m) = given.momentum {
        anyhow::ensure!((0.0..1.0).contains(&m), "--momentum must be in 0..1, got {m}");
        anyhow::ensure!(
            m > 0.0 || given.nesterov != Some(true),
            "--nesterov true needs a momentum above 0 (--momentum 0 is plain gradient descent)"
        );
        // Nesterov needs momentum; --momentum 0 alone means plain gradient descent.
        sgd.momentum = m;
        sgd.nesterov = m > 0.0;
    }
    if let Some(nesterov) = given.nesterov {
        sgd.nesterov = nesterov;
    }
    Ok(config)
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
