//! Command-line arguments.
//!
//! Flags that several commands share are one `#[derive(Args)]` group each ([`JsonArg`],
//! [`DataArgs`], [`IdxDataArgs`], [`RenameArgs`], [`LimitArgs`], [`DeviceArg`]), flattened into the commands
//! that take them, so a flag is parsed, validated and applied the same way everywhere. A
//! command whose wording of a shared flag differs (what `--dataset` defaults to, say) keeps
//! its own help text with `#[command(mut_arg(ID, help(...)))]`.

use std::path::PathBuf;

use clap::{Arg, Args, Parser, Subcommand, ValueEnum};
use ember_data::{ColorMode, DataSplits};
use ember_optim::{OptimizerKind, ScheduleConfig};
use serde::{Deserialize, Serialize};

/// ember: a deep-learning toolkit in Rust.
#[derive(Debug, Parser)]
#[command(name = "ember", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model and save its weights (default: the classic CNN on the bundled MNIST sample).
    Train(Box<TrainArgs>),
    /// Evaluate a saved checkpoint on a test set.
    Eval(EvalArgs),
    /// Write a PNG grid of training images (top row) and augmented copies (one row per epoch).
    Augment(AugmentArgs),
    /// Inspect datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// Convert a PyTorch checkpoint (.pth/.pt/.bin, zip or legacy) to safetensors, without Python.
    Convert(ConvertArgs),
    /// List a checkpoint's tensors: names, shapes, dtypes and the parameter count.
    Inspect(InspectArgs),
    /// List the model zoo or show a model's layers.
    #[command(subcommand)]
    Zoo(ZooCommand),
    /// Training and inference throughput (images/s) of a zoo model, after a warm-up.
    Bench(BenchArgs),
    /// Classify image files with a zoo model and its weights (top-k classes and probabilities).
    Predict(PredictArgs),
    /// Transfer a pretrained model to a few labelled images per class (fine-tune, linear probe,
    /// LoRA) or train it from scratch on the same images; reports full test-set accuracy.
    Finetune(Box<FineTuneArgs>),
    /// Evaluate an ensemble of trained classifiers (mean, weighted mean or majority vote) and
    /// each member on a test set.
    Ensemble(EnsembleArgs),
    /// Train a student model from a teacher ensemble's softened outputs and the labels.
    Distill(Box<DistillArgs>),
    /// Train variational autoencoders and draw samples from them.
    #[command(subcommand)]
    Vae(VaeCommand),
    /// Learn a sequence of tasks (class splits of one dataset) one after another and report
    /// the accuracy on every task after each one, average accuracy and forgetting.
    Continual(Box<ContinualArgs>),
    /// Compare runs: one metric per epoch of several run directories in a table and one plot
    /// (e.g. optimizers, or the train-validation gap with and without regularisation).
    Compare(CompareArgs),
}

/// `--json`, which every command that reports results takes.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct JsonArg {
    /// End with one JSON line of results.
    #[arg(long)]
    pub json: bool,
}

/// `--device`, which every command that computes takes. It is not a setting of the run (not in
/// `--config` files or a run's saved settings): a run started on a GPU can be resumed on a CPU.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct DeviceArg {
    /// Where to compute: cpu, cuda (the first GPU) or cuda:N; CUDA needs an ember built with
    /// `--features cuda`.
    #[arg(long, default_value = "cpu")]
    pub device: crate::device::DeviceName,
}

impl DeviceArg {
    /// Opens the device (see [`crate::device::DeviceName::open`]).
    pub fn open(&self) -> anyhow::Result<candle_core::Device> {
        self.device.open()
    }
}

/// `--dataset` and `--data-dir`: which data a command reads ([`crate::data::open`] says how
/// they combine).
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
pub struct DataArgs {
    /// Dataset kind [default: detected from --data-dir, else mnist-sample].
    #[arg(long)]
    pub dataset: Option<String>,
    /// The data (image folder, CIFAR batches, IDX files).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl DataArgs {
    /// Whether the command was pointed at any data.
    pub fn given(&self) -> bool {
        self.dataset.is_some() || self.data_dir.is_some()
    }

    /// What the data is called in reports: the dataset's name, else the directory.
    pub fn name(&self) -> Option<&str> {
        self.dataset.as_deref().or(self.data_dir.as_deref().and_then(|d| d.to_str()))
    }

    /// Opens the data (see [`crate::data::open`]).
    pub fn open(&self, color: ColorMode, skip_bad_images: bool) -> anyhow::Result<DataSplits> {
        crate::data::open(self.dataset.as_deref(), self.data_dir.as_deref(), color, skip_bad_images)
    }
}

/// `--dataset` and `--data-dir` of the commands that read MNIST-family IDX files only.
#[derive(Debug, Clone, Args)]
pub struct IdxDataArgs {
    /// Dataset: mnist-sample (bundled), mnist or fashion-mnist.
    #[arg(long, default_value = "mnist-sample")]
    pub dataset: String,
    /// Directory holding the dataset's IDX files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// `--rename`: rules applied to a checkpoint's tensor names before they are matched.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
pub struct RenameArgs {
    /// Renaming rule for the checkpoint's keys, applied in order: strip:PREFIX, add:PREFIX or
    /// regex:PATTERN=REPLACEMENT (repeatable).
    #[arg(long = "rename")]
    pub rename: Vec<String>,
}

/// `--train-limit` and `--test-limit`: quick runs on the first images of each split.
#[derive(Debug, Clone, Copy, Default, Args, Serialize, Deserialize)]
pub struct LimitArgs {
    /// Train on only the first N training images.
    #[arg(long, value_parser = at_least_one)]
    pub train_limit: Option<usize>,
    /// Test on only the first N test images.
    #[arg(long, value_parser = at_least_one)]
    pub test_limit: Option<usize>,
}

impl LimitArgs {
    /// Cuts `data`'s training and test splits to the limits given.
    pub fn apply(&self, data: &mut DataSplits) -> anyhow::Result<()> {
        if let Some(n) = self.train_limit {
            data.limit_train(n)?;
        }
        if let Some(n) = self.test_limit {
            data.limit_test(n)?;
        }
        Ok(())
    }
}

/// For `#[command(mut_arg(ID, help(TEXT)))]`: a shared flag worded for one command.
fn help(text: &'static str) -> impl FnOnce(Arg) -> Arg {
    move |arg| arg.help(text)
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Run directories (each with the metrics.csv that train, finetune and distill write).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// The metric: a column of metrics.csv, or `gap` (train minus validation accuracy).
    #[arg(long, default_value = "val_accuracy",
          value_parser = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate", "gap"])]
    pub metric: String,
    /// Draw the curves into this PNG.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub report: JsonArg,
}

#[derive(Debug, Args)]
#[command(mut_arg("data_dir", help("The data (IDX files, image folder, CIFAR batches)")))]
pub struct ContinualArgs {
    /// How old tasks are protected: nothing, a replay memory, EWC's penalty, or LwF's distillation.
    #[arg(long, default_value = "naive", value_parser = ["naive", "rehearsal", "ewc", "lwf"])]
    pub method: String,
    /// class: one head over every class seen, no task identity at test time; task: each
    /// example scored among its own task's classes.
    #[arg(long, default_value = "class", value_parser = ["class", "task"])]
    pub setting: String,
    /// The tasks: class ranges (`0-4,5-9`; `0+2+4,1+3+5`) or a number of equal splits (`5`).
    #[arg(long, default_value = "0-4,5-9")]
    pub tasks: String,
    /// Model from the zoo (one output per class of the data).
    #[arg(long, default_value = ember_zoo::DEFAULT_CLASSIFIER)]
    pub model: String,
    #[command(flatten)]
    pub data: DataArgs,
    /// Passes over each task's training data (the same for every method).
    #[arg(long, value_parser = at_least_one, default_value_t = 2)]
    pub epochs_per_task: usize,
    /// Images per mini-batch.
    #[arg(long, value_parser = at_least_one, default_value_t = 64)]
    pub batch_size: usize,
    /// Adam's constant learning rate.
    #[arg(long, value_parser = positive_f64, default_value_t = 1e-3)]
    pub lr: f64,
    /// Rehearsal: training images kept per class (reservoir sampling).
    #[arg(long, value_parser = at_least_one, default_value_t = 20)]
    pub replay_per_class: usize,
    /// EWC: strength lambda of the penalty lambda/2 sum F (theta - theta*)^2.
    #[arg(long, value_parser = non_negative_f64, default_value_t = 10000.0)]
    pub ewc_lambda: f64,
    /// EWC: training images per Fisher estimate.
    #[arg(long, value_parser = at_least_one, default_value_t = 1000)]
    pub fisher_samples: usize,
    /// LwF: softmax temperature T of the distillation.
    #[arg(long, value_parser = positive_f64, default_value_t = 2.0)]
    pub lwf_temperature: f64,
    /// LwF: weight alpha of the distillation term (the labels' loss gets 1 - alpha).
    #[arg(long, value_parser = unit_interval, default_value_t = 0.5)]
    pub lwf_alpha: f64,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Seed of initialisation, shuffling, the replay memory and the Fisher estimate.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub report: JsonArg,
}

#[derive(Debug, Args)]
#[command(mut_arg(
    "rename",
    help(
        "Renaming rule for the tensors' names, applied in order: strip:PREFIX, \
    add:PREFIX, regex:PATTERN=REPLACEMENT, flatten:PATTERN=REPLACEMENT, or a preset (timm: timm's \
    tf_efficientnet_lite0..4 onto ember's efficientnet-lite names) (repeatable)"
    )
))]
pub struct ConvertArgs {
    /// The checkpoint to read.
    pub input: PathBuf,
    /// The safetensors file to write.
    pub output: PathBuf,
    #[command(flatten)]
    pub rename: RenameArgs,
    #[command(flatten)]
    pub report: JsonArg,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A safetensors or PyTorch checkpoint.
    pub file: PathBuf,
    #[command(flatten)]
    pub report: JsonArg,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Model from the zoo [default: the checkpoint's model card, else efficientnet-lite0].
    #[arg(long)]
    pub model: Option<String>,
    /// Weights: an ember checkpoint (its model card names the model, input, classes and
    /// preprocessing), other safetensors or a PyTorch checkpoint (the class count is read from
    /// its head).
    #[arg(long)]
    pub weights: PathBuf,
    #[command(flatten)]
    pub rename: RenameArgs,
    /// Class names, one a line in class-index order [default: the checkpoint's, else the file
    /// named by $EMBER_LABELS].
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Classes shown per image.
    #[arg(long, value_parser = at_least_one, default_value_t = 5)]
    pub top: usize,
    /// The shorter side is resized to this many pixels (bilinear) ... [default: crop / the
    /// model's crop fraction, 256 for 224]
    #[arg(long, value_parser = positive_u32)]
    pub resize: Option<u32>,
    /// ... then centre-cropped to this square [default: the model's input side].
    #[arg(long, value_parser = positive_u32)]
    pub crop: Option<u32>,
    /// Per-channel mean subtracted from [0, 1] pixels, comma-separated [default: the model's,
    /// e.g. ImageNet's for ResNets].
    #[arg(long)]
    pub mean: Option<String>,
    /// Per-channel standard deviation, comma-separated [default: the model's].
    #[arg(long)]
    pub std: Option<String>,
    /// Image files (PNG, JPEG, BMP, WebP).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub report: JsonArg,
}

/// How `ember finetune` trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FineTuneMode {
    /// Head first (backbone frozen), then everything with discriminative rates (fastai's fine_tune).
    FineTune,
    /// The head only, on frozen features.
    Probe,
    /// Head first, then LoRA adapters (and the head) only.
    Lora,
    /// The same network from random weights, every parameter, head-epochs + epochs epochs.
    Scratch,
}

/// `ember finetune` flags; saved as `RUN_DIR/config.json` so `--resume` rebuilds the run.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[command(mut_arg(
    "dataset",
    help(
        "Dataset kind: folder, cifar10, cifar100, mnist, fashion-mnist, \
    mnist-sample (bundled), csv [default: detected from --data-dir, else fashion-mnist]"
    )
))]
#[command(mut_arg(
    "data_dir",
    help(
        "The data: an image folder (DIR/<class>/* or \
    DIR/{train,val,test}/<class>/*), CIFAR binary batches or MNIST-family IDX files"
    )
))]
pub struct FineTuneArgs {
    /// Continue the fine-tune run in this directory (its saved settings are used; other
    /// settings flags must be left out).
    #[arg(long)]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Model from the zoo.
    #[arg(long, default_value = ember_zoo::DEFAULT_PRETRAINED)]
    pub model: String,
    /// Pretrained weights (safetensors or PyTorch); a head of another class count is replaced.
    #[arg(long)]
    pub weights: Option<std::path::PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub rename: RenameArgs,
    /// What to train.
    #[arg(long, value_enum, default_value = "fine-tune")]
    pub mode: FineTuneMode,
    #[command(flatten)]
    #[serde(flatten)]
    pub data: DataArgs,
    /// Leave out images that cannot be decoded (they are counted) instead of stopping.
    #[arg(long)]
    pub skip_bad_images: bool,
    /// Training images per class (a seeded few-shot subset) [default: all; 100 for the
    /// MNIST family found by name].
    #[arg(long, value_parser = at_least_one)]
    pub per_class: Option<usize>,
    /// Model input side in pixels [default: the model's, e.g. 224].
    #[arg(long, value_parser = positive_u32)]
    pub size: Option<u32>,
    /// Input channels: a 3-channel pretrained stem is adapted (1: its filters summed, timm's
    /// rule) [default: the model's].
    #[arg(long, value_parser = at_least_one)]
    pub in_chans: Option<usize>,
    /// Fraction of the training images held out for validation when the data has no
    /// validation split (stratified, seeded); the test split is scored once, at the end.
    #[arg(long, value_parser = unit_interval, default_value_t = 0.1)]
    pub val_split: f64,
    /// Epochs of the head phase (backbone frozen; cheap on cached features).
    #[arg(long, default_value_t = 5)]
    pub head_epochs: usize,
    /// Epochs after the head phase.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Peak learning rate of the head phase.
    #[arg(long, value_parser = positive_f64, default_value_t = 1e-2)]
    pub head_lr: f64,
    /// Peak learning rate after the head phase (the last layer group's; scratch: every parameter's).
    #[arg(long, value_parser = positive_f64, default_value_t = 2e-3)]
    pub lr: f64,
    /// The first layer group learns lr / lr-ratio.
    #[arg(long, value_parser = positive_f64, default_value_t = 10.0)]
    pub lr_ratio: f64,
    /// AdamW weight decay.
    #[arg(long, value_parser = non_negative_f64, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Stop when validation accuracy has not improved for this many epochs (the best epoch is
    /// kept either way).
    #[arg(long, value_parser = at_least_one)]
    pub early_stopping: Option<usize>,
    /// Gradient clipping by global norm.
    #[arg(long, value_parser = positive_f64)]
    pub clip_grad_norm: Option<f64>,
    /// Mini-batch size (small batches avoid the allocator's page-fault overhead on big tensors).
    #[arg(long, value_parser = at_least_one, default_value_t = 16)]
    pub batch_size: usize,
    /// Images per evaluation batch.
    #[arg(long, value_parser = at_least_one, default_value_t = 16)]
    pub eval_batch_size: usize,
    /// Augmentation of the training images [default: random resized crop and flip for image
    /// folders, none for fixed-size images]; "none" turns it off.
    #[arg(long)]
    pub ops: Option<String>,
    /// Run the head phase through the whole network every step instead of on cached features.
    #[arg(long)]
    pub no_cache: bool,
    /// Before testing, re-estimate batch-norm running statistics with this many train-mode
    /// passes over the training images (no weight updates).
    #[arg(long, default_value_t = 0)]
    pub recalibrate_bn: usize,
    /// Keep batch norms on their pretrained running statistics while fine-tuning everything
    /// (their scale and shift still train): the robust choice for small datasets and batches;
    /// `--freeze-bn false` lets the statistics follow the new data (fastai's default).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub freeze_bn: bool,
    /// LoRA rank.
    #[arg(long, value_parser = at_least_one, default_value_t = 4)]
    pub lora_rank: usize,
    /// LoRA alpha (the update is scaled by alpha / rank).
    #[arg(long, value_parser = positive_f64, default_value_t = 8.0)]
    pub lora_alpha: f64,
    /// LoRA rank dropout.
    #[arg(long, value_parser = dropout_rate, default_value_t = 0.0)]
    pub lora_dropout: f64,
    /// LoRA target layers, comma-separated glob patterns of parameter prefixes [default:
    /// EfficientNet-Lite's expand and project convolutions and conv head; for other models
    /// every convolution and linear layer but the head].
    #[arg(long)]
    pub lora_targets: Option<String>,
    /// Let batch-norm running statistics follow the new data during LoRA training.
    #[arg(long)]
    pub lora_train_bn_stats: bool,
    /// Seed of the subset, initialisation and shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Test on only the first N test images.
    #[arg(long, value_parser = at_least_one)]
    pub test_limit: Option<usize>,
    /// Run directory: config.json, run.json, metrics.csv, best/last/model.safetensors (or
    /// adapter.safetensors), resume state, TensorBoard logs and plots.
    #[arg(long, default_value = "runs/finetune")]
    pub out: PathBuf,
    #[command(flatten)]
    #[serde(skip)]
    pub device: DeviceArg,
    #[command(flatten)]
    #[serde(skip)]
    pub report: JsonArg,
}

/// How `ember ensemble` combines its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CombineArg {
    /// Mean of the members' probabilities.
    Mean,
    /// Weighted mean of probabilities (--weights).
    Weighted,
    /// Majority vote of the members' top classes.
    Vote,
}

#[derive(Debug, Args)]
#[command(mut_arg(
    "dataset",
    help(
        "Dataset kind whose test split is used [default: detected from \
    --data-dir, else mnist-sample]"
    )
))]
pub struct EnsembleArgs {
    /// Checkpoints of the members (a run.json beside each names its model and input).
    #[arg(required = true)]
    pub checkpoints: Vec<PathBuf>,
    /// Model of members without a run.json.
    #[arg(long, default_value = ember_zoo::DEFAULT_CLASSIFIER)]
    pub model: String,
    /// How predictions are combined.
    #[arg(long, value_enum, default_value = "mean")]
    pub combine: CombineArg,
    /// Member weights for --combine weighted, comma-separated.
    #[arg(long)]
    pub weights: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Test on only the first N test images.
    #[arg(long, value_parser = at_least_one)]
    pub test_limit: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub report: JsonArg,
}

#[derive(Debug, Args)]
pub struct DistillArgs {
    /// Teacher checkpoints (their mean probabilities teach; a run.json beside each names its model).
    #[arg(long, required = true, num_args = 1..)]
    pub teachers: Vec<PathBuf>,
    /// Model of teachers without a run.json.
    #[arg(long, default_value = ember_zoo::DEFAULT_CLASSIFIER)]
    pub teacher_model: String,
    /// Student model from the zoo (built for the teachers' input).
    #[arg(long, default_value = ember_zoo::DEFAULT_STUDENT)]
    pub student: String,
    /// Softmax temperature T.
    #[arg(long, value_parser = positive_f64, default_value_t = 4.0)]
    pub temperature: f64,
    /// Weight of the soft loss (0: the student trains alone on the labels).
    #[arg(long, value_parser = unit_interval, default_value_t = 0.9)]
    pub alpha: f64,
    #[command(flatten)]
    pub data: DataArgs,
    /// Passes over the training set.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Images per mini-batch.
    #[arg(long, value_parser = at_least_one, default_value_t = 64)]
    pub batch_size: usize,
    /// Peak learning rate of Adam's one-cycle schedule.
    #[arg(long, value_parser = positive_f64, default_value_t = 3e-3)]
    pub lr: f64,
    /// Augmentation of the training images ("none" turns it off).
    #[arg(long, default_value = "pad-crop:2")]
    pub ops: String,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Seed of initialisation and shuffling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Directory for the student's model.safetensors.
    #[arg(long, default_value = "runs/distill")]
    pub out: PathBuf,
    #[command(flatten)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub report: JsonArg,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Counts per split and per class of a dataset (downloading it if it is nowhere local).
    Info(DataInfoArgs),
}

#[derive(Debug, Args)]
#[command(mut_arg("data_dir", help("The data (image folder, CIFAR batches, IDX files, CSV tables)")))]
pub struct DataInfoArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub report: JsonArg,
}

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleArg {
    /// One-cycle: warm up to --lr over 30 % of the steps, then anneal (PyTorch OneCycleLR).
    OneCycle,
    /// Cosine annealing from --lr to 0 over the run.
    Cosine,
    /// Halve the rate every third of the run.
    Step,
    /// Constant --lr.
    Constant,
}

/// Optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerArg {
    /// Adam (β 0.9/0.999).
    Adam,
    /// AdamW (decoupled weight decay).
    Adamw,
    /// SGD: with Nesterov momentum 0.9 unless --momentum/--nesterov say otherwise.
    Sgd,
    /// RMSprop.
    Rmsprop,
    /// Adagrad.
    Adagrad,
}

impl ScheduleArg {
    /// ember-optim's schedule of this name, with its recipe settings.
    pub fn config(self) -> ScheduleConfig {
        match self {
            Self::OneCycle => ScheduleConfig::OneCycle(Default::default()),
            Self::Cosine => ScheduleConfig::Cosine(Default::default()),
            Self::Step => ScheduleConfig::Step(Default::default()),
            Self::Constant => ScheduleConfig::Constant,
        }
    }
}

impl From<OptimizerArg> for OptimizerKind {
    fn from(arg: OptimizerArg) -> Self {
        match arg {
            OptimizerArg::Adam => Self::Adam,
            OptimizerArg::Adamw => Self::Adamw,
            OptimizerArg::Sgd => Self::Sgd,
            OptimizerArg::Rmsprop => Self::Rmsprop,
            OptimizerArg::Adagrad => Self::Adagrad,
        }
    }
}

/// `ember train` flags. Every setting can also come from `--config run.toml` (same names, with
/// underscores); flags given on the command line win.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// TOML file with settings (`model = "mnist-cnn"`, `epochs = 12`, ...).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue the run in this directory exactly where it stopped (its settings are reused).
    #[arg(long, conflicts_with = "config")]
    pub resume: Option<PathBuf>,
    #[command(flatten)]
    pub settings: TrainSettings,
    #[command(flatten)]
    pub device: DeviceArg,
    /// Train data-parallel, one replica per device, e.g. `0,1` (GPUs) or `cpu,cpu`: every epoch
    /// is sharded over the replicas (each takes --batch-size images a step), gradients are
    /// averaged after every backward pass, and the first replica alone writes the run
    /// directory. The replicas run as threads of this process; for one process per replica
    /// (NCCL, several machines) set WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT
    /// instead, as torchrun does (see docs/gpu.md).
    #[arg(long, value_delimiter = ',', conflicts_with = "device")]
    pub devices: Vec<crate::device::DeviceName>,
    #[command(flatten)]
    pub report: JsonArg,
}

/// The settings of `ember train`, each optional: its flags, and what a `--config` TOML file
/// holds (the same names, with underscores). `TrainConfig::resolve` (in `train_config.rs`) puts flags over the file
/// over the defaults; values are checked there, so a bad value in either place gets the same
/// error naming its flag.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
// The field docs are `--help` text, where `DIR/<class>/*` reads as meant; rustdoc would take
// `<class>` for an HTML tag.
#[allow(rustdoc::invalid_html_tags)]
pub struct TrainSettings {
    /// Model from the zoo [default: mnist-cnn].
    #[arg(long)]
    pub model: Option<String>,
    /// Dataset kind: folder, cifar10, cifar100, mnist, fashion-mnist, mnist-sample (bundled) or
    /// csv [default: detected from --data-dir, else mnist-sample].
    #[arg(long)]
    pub dataset: Option<String>,
    /// The data: an image folder (DIR/<class>/* or DIR/{train,val,test}/<class>/*), CIFAR
    /// binary batches, MNIST-family IDX files or CSV tables.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Model input side in pixels [default: the data's own size; for image folders the model's].
    #[arg(long)]
    pub size: Option<usize>,
    /// Leave out images that cannot be decoded (they are counted) instead of stopping.
    #[arg(long)]
    #[serde(default)]
    pub skip_bad_images: bool,
    /// Passes over the training set [default: 12].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per mini-batch [default: 64].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate: the peak of the one-cycle schedule (default 0.005), otherwise the initial
    /// rate (default 0.001; SGD 0.01).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning-rate schedule [default: one-cycle].
    #[arg(long, value_enum, alias = "schedule")]
    pub scheduler: Option<ScheduleArg>,
    /// Optimizer [default: adam].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerArg>,
    /// Weight decay (L2 for Adam/SGD/RMSprop/Adagrad, decoupled for AdamW) [default: 0; AdamW 0.01].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// SGD momentum; 0 is plain (mini-batch) gradient descent [default: 0.9].
    #[arg(long)]
    pub momentum: Option<f64>,
    /// SGD with Nesterov's momentum (true) or classical momentum (false) [default: true].
    #[arg(long)]
    pub nesterov: Option<bool>,
    /// Dropout probability of models with dropout layers (vgg-small: before the output layer,
    /// half of it after every block; 0 turns dropout off) [default: the model's own].
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Batch norm after every convolution (`false`: vgg-small without batch norm) [default: true].
    #[arg(long)]
    pub batch_norm: Option<bool>,
    /// Augmentation pipeline applied to every training image, e.g. "pad-crop:2,hflip"
    /// ("none" turns it off; ops: see `ember augment --help`) [default: pad-crop:2 for digits,
    /// resized-crop:SIZE,hflip for image folders].
    #[arg(long)]
    pub ops: Option<String>,
    /// Seed for initialisation, shuffling and augmentation [default: 42].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Train on only the first N training images (quick experiments).
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Validate and test on only the first N test images (quick experiments with big models).
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Fraction of the training images (stratified, seeded) held out for validation when the
    /// data has no validation split of its own [default: 0.1]. The test split is never used for
    /// validation; it is scored once, at the end.
    #[arg(long)]
    pub val_split: Option<f64>,
    /// Stop when validation accuracy has not improved for this many epochs, and keep the best
    /// epoch's weights.
    #[arg(long)]
    pub early_stopping: Option<usize>,
    /// Gradient clipping by global norm.
    #[arg(long)]
    pub clip_grad_norm: Option<f64>,
    /// TensorBoard log directory [default: RUN_DIR/tensorboard].
    #[arg(long)]
    pub logdir: Option<PathBuf>,
    /// Run directory for weights, logs, plots and resume state [default: runs/latest].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl TrainSettings {
    /// These settings, and `file`'s where these have none: flags over the `--config` file.
    pub(crate) fn or(self, file: Self) -> Self {
        macro_rules! either {
            ($($setting:ident),*) => {
                Self { $($setting: self.$setting.or(file.$setting),)* skip_bad_images: self.skip_bad_images || file.skip_bad_images }
            };
        }
        either!(
            model,
            dataset,
            data_dir,
            size,
            epochs,
            batch_size,
            lr,
            scheduler,
            optimizer,
            weight_decay,
            momentum,
            nesterov,
            dropout,
            batch_norm,
            ops,
            seed,
            train_limit,
            test_limit,
            val_split,
            early_stopping,
            clip_grad_norm,
            logdir,
            out
        )
    }
}

#[derive(Debug, Args)]
#[command(mut_arg("dataset", help("Dataset kind [default: the run's, or detected from --data-dir]")))]
#[command(mut_arg("data_dir", help("The data whose test split is scored [default: the run's]")))]
pub struct EvalArgs {
    /// Checkpoint to evaluate (its model card, or a run.json beside it, supplies the model,
    /// input, class names, preprocessing and data).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Model from the zoo [default: the checkpoint's, else mnist-cnn].
    #[arg(long)]
    pub model: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Leave out images that cannot be decoded (they are counted) instead of stopping.
    #[arg(long)]
    pub skip_bad_images: bool,
    /// Images per evaluation batch [default: 100, fewer for big inputs (27 at 3x224x224)].
    #[arg(long, value_parser = at_least_one)]
    pub batch_size: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub report: JsonArg,
}

#[derive(Debug, Args)]
#[command(mut_arg(
    "dataset",
    help(
        "Train on this dataset's images (e.g. fashion-mnist); default: random \
    images of the model's input shape, or the images of --data-dir"
    )
))]
#[command(mut_arg(
    "data_dir",
    help(
        "The data (image folder, CIFAR batches, IDX files); folder images are \
    resized and centre-cropped to the model's input"
    )
))]
pub struct BenchArgs {
    /// Model name (see `ember zoo list`).
    #[arg(long, default_value = ember_zoo::DEFAULT_CLASSIFIER)]
    pub model: String,
    #[command(flatten)]
    pub data: DataArgs,
    /// Images per batch (training and inference).
    #[arg(long, value_parser = at_least_one, default_value_t = 64)]
    pub batch_size: usize,
    /// Threads for ember's kernels and candle's matmul (default: RAYON_NUM_THREADS or all cores).
    #[arg(long, value_parser = at_least_one)]
    pub threads: Option<usize>,
    /// Untimed training steps first.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Timed training steps.
    #[arg(long, value_parser = at_least_one, default_value_t = 100)]
    pub batches: usize,
    /// Train only the classifier head (the first stage of fine-tuning): every other parameter
    /// frozen, every batch norm on its running statistics.
    #[arg(long)]
    pub freeze_backbone: bool,
    #[command(flatten)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub report: JsonArg,
}

#[derive(Debug, Subcommand)]
pub enum ZooCommand {
    /// Every model: name, parameters, input shape, task, pretrained weights.
    List(ZooListArgs),
    /// A model's layers with output shapes and parameters (like Keras `summary()`).
    Show(ZooShowArgs),
}

#[derive(Debug, Args)]
pub struct ZooListArgs {
    #[command(flatten)]
    pub report: JsonArg,
}

#[derive(Debug, Args)]
pub struct ZooShowArgs {
    /// Model name (see `ember zoo list`).
    pub name: String,
    /// Input shape CxHxW (default: the model's, e.g. 3x224x224 for resnet18).
    #[arg(long)]
    pub input: Option<String>,
    /// Output classes (default: the model's).
    #[arg(long)]
    pub classes: Option<usize>,
    #[command(flatten)]
    pub report: JsonArg,
}

#[derive(Debug, Subcommand)]
pub enum VaeCommand {
    /// Train a VAE on an MNIST-family dataset; writes weights, vae.json and PNG grids.
    Train(VaeTrainArgs),
    /// Decode samples from the prior of a trained VAE into a PNG grid.
    Sample(VaeSampleArgs),
}

#[derive(Debug, Args)]
pub struct VaeTrainArgs {
    /// VAE from the zoo: vae-mlp or vae-conv.
    #[arg(long, default_value = "vae-mlp")]
    pub model: String,
    #[command(flatten)]
    pub data: IdxDataArgs,
    /// Passes over the training set.
    #[arg(long, default_value_t = 50)]
    pub epochs: usize,
    /// Images per mini-batch.
    #[arg(long, value_parser = at_least_one, default_value_t = 128)]
    pub batch_size: usize,
    /// Adam's learning rate.
    #[arg(long, value_parser = positive_f64, default_value_t = 1e-3)]
    pub lr: f64,
    /// Latent dimensions.
    #[arg(long, value_parser = at_least_one, default_value_t = 20)]
    pub latent: usize,
    /// Weight of the KL term (1 is the plain VAE).
    #[arg(long, value_parser = non_negative_f64, default_value_t = 1.0)]
    pub beta: f64,
    /// Seed for initialisation, shuffling and the reparameterisation noise.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Train on only the first N training images.
    #[arg(long, value_parser = at_least_one)]
    pub train_limit: Option<usize>,
    /// Run directory for model.safetensors, vae.json, samples.png, reconstructions.png and
    /// interpolation.png.
    #[arg(long, default_value = "runs/vae")]
    pub out: PathBuf,
    #[command(flatten)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub report: JsonArg,
}

#[derive(Debug, Args)]
pub struct VaeSampleArgs {
    /// Weights written by `ember vae train` (vae.json beside them names the model).
    #[arg(long, default_value = "runs/vae/model.safetensors")]
    pub checkpoint: PathBuf,
    /// PNG to write the grid of samples to.
    #[arg(long)]
    pub grid: PathBuf,
    /// Number of samples.
    #[arg(long, value_parser = at_least_one, default_value_t = 64)]
    pub count: usize,
    /// Seed of the latent codes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write test images next to their reconstructions (two rows per grid row) to this PNG.
    #[arg(long)]
    pub reconstructions: Option<PathBuf>,
    /// Also write latent interpolations between pairs of test images to this PNG.
    #[arg(long)]
    pub interpolate: Option<PathBuf>,
    /// Directory holding the test IDX files (default: the training run's dataset).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceArg,
}

#[derive(Debug, Args)]
pub struct AugmentArgs {
    #[command(flatten)]
    pub data: IdxDataArgs,
    /// Augmentation pipeline, e.g. "pad-crop:4,hflip,noise:0.1" (ops: see ember_augment::Pipeline).
    #[arg(long)]
    pub ops: String,
    /// Output PNG.
    #[arg(long)]
    pub grid: PathBuf,
    /// Training images shown (the first N).
    #[arg(long, value_parser = at_least_one, default_value_t = 8)]
    pub count: usize,
    /// Augmented rows (epochs 0, 1, ...).
    #[arg(long, value_parser = at_least_one, default_value_t = 4)]
    pub rows: usize,
    /// Seed of the augmentation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// A count that must be at least 1 (batch sizes, epochs, limits, ...): 0 would make the command
/// do nothing meaningful, so it is refused instead of rounded up.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

/// A pixel size of at least 1.
fn positive_u32(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

fn number(text: &str) -> Result<f64, String> {
    text.parse::<f64>().map_err(|e| e.to_string()).and_then(|v| {
        if v.is_finite() {
            Ok(v)
        } else {
            Err("must be finite".into())
        }
    })
}

/// A learning rate, temperature or scale: a finite number above 0.
fn positive_f64(text: &str) -> Result<f64, String> {
    number(text).and_then(|v| if v > 0.0 { Ok(v) } else { Err("must be above 0".into()) })
}

/// A weight decay or loss weight: a finite number of at least 0.
fn non_negative_f64(text: &str) -> Result<f64, String> {
    number(text).and_then(|v| if v >= 0.0 { Ok(v) } else { Err("must not be negative".into()) })
}

/// A weight in `[0, 1]`.
fn unit_interval(text: &str) -> Result<f64, String> {
    number(text).and_then(|v| if (0.0..=1.0).contains(&v) { Ok(v) } else { Err("must lie in [0, 1]".into()) })
}

/// A dropout probability in `[0, 1)`.
fn dropout_rate(text: &str) -> Result<f64, String> {
    number(text).and_then(|v| if (0.0..1.0).contains(&v) { Ok(v) } else { Err("must lie in [0, 1)".into()) })
}
