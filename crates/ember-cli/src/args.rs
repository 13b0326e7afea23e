//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    Train(TrainArgs),
    /// Evaluate a saved checkpoint on a test set.
    Eval(EvalArgs),
    /// Write a PNG grid of training images (top row) and augmented copies (one row per epoch).
    Augment(AugmentArgs),
}

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleArg {
    /// One-cycle: warm up to --lr over 30 % of the steps, then anneal (PyTorch OneCycleLR).
    OneCycle,
    /// Constant --lr.
    Constant,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Model from the zoo.
    #[arg(long, default_value = "mnist-cnn")]
    pub model: String,
    /// Dataset: mnist-sample (bundled), mnist or fashion-mnist.
    #[arg(long, default_value = "mnist-sample")]
    pub dataset: String,
    /// Directory holding the dataset's IDX files (train-images-idx3-ubyte[.gz], ...).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Passes over the training set.
    #[arg(long, default_value_t = 12)]
    pub epochs: usize,
    /// Images per mini-batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Learning rate: the peak of the one-cycle schedule (default 0.005), or the constant rate
    /// (default 0.001, Adam's usual).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = ScheduleArg::OneCycle)]
    pub schedule: ScheduleArg,
    /// Zero padding for the random-shift augmentation (pad, then random crop back to size);
    /// 0 turns augmentation off.
    #[arg(long, default_value_t = 2)]
    pub pad_crop: u32,
    /// Seed for initialisation, shuffling and augmentation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Train on only the first N training images (quick experiments).
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Run directory for model.safetensors and run.json.
    #[arg(long, default_value = "runs/latest")]
    pub out: PathBuf,
    /// End with one JSON line of results.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Checkpoint to evaluate (a run.json beside it supplies the model and dataset).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Model from the zoo (default: from run.json, else mnist-cnn).
    #[arg(long)]
    pub model: Option<String>,
    /// Dataset whose test split is used (default: from run.json, else mnist-sample).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Directory holding the test IDX files (t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Images per evaluation batch.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// End with one JSON line of results.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AugmentArgs {
    /// Dataset: mnist-sample (bundled), mnist or fashion-mnist.
    #[arg(long, default_value = "mnist-sample")]
    pub dataset: String,
    /// Directory holding the dataset's IDX files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Augmentation pipeline, e.g. "pad-crop:4,hflip,noise:0.1" (ops: see ember_augment::Pipeline).
    #[arg(long)]
    pub ops: String,
    /// Output PNG.
    #[arg(long)]
    pub grid: PathBuf,
    /// Training images shown (the first N).
    #[arg(long, default_value_t = 8)]
    pub count: usize,
    /// Augmented rows (epochs 0, 1, ...).
    #[arg(long, default_value_t = 4)]
    pub rows: usize,
    /// Seed of the augmentation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}
