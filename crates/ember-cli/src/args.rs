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
    /// Inspect datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// List the model zoo or show a model's layers.
    #[command(subcommand)]
    Zoo(ZooCommand),
    /// Train variational autoencoders and draw samples from them.
    #[command(subcommand)]
    Vae(VaeCommand),
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Counts per split and per class of a dataset (downloading it if it is nowhere local).
    Info(DataInfoArgs),
}

#[derive(Debug, Args)]
pub struct DataInfoArgs {
    /// Dataset: mnist-sample (bundled), mnist or fashion-mnist.
    #[arg(long, default_value = "mnist-sample")]
    pub dataset: String,
    /// Directory holding the dataset's IDX files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// End with one JSON line of results.
    #[arg(long)]
    pub json: bool,
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
    /// Validate and test on only the first N test images (quick experiments with big models).
    #[arg(long)]
    pub test_limit: Option<usize>,
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

#[derive(Debug, Subcommand)]
pub enum ZooCommand {
    /// Every model: name, parameters, input shape, task, pretrained weights.
    List(ZooListArgs),
    /// A model's layers with output shapes and parameters (like Keras `summary()`).
    Show(ZooShowArgs),
}

#[derive(Debug, Args)]
pub struct ZooListArgs {
    /// End with one JSON line of results.
    #[arg(long)]
    pub json: bool,
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
    /// End with one JSON line of results.
    #[arg(long)]
    pub json: bool,
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
    /// Dataset: mnist-sample (bundled), mnist or fashion-mnist.
    #[arg(long, default_value = "mnist-sample")]
    pub dataset: String,
    /// Directory holding the dataset's IDX files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Passes over the training set.
    #[arg(long, default_value_t = 50)]
    pub epochs: usize,
    /// Images per mini-batch.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Latent dimensions.
    #[arg(long, default_value_t = 20)]
    pub latent: usize,
    /// Weight of the KL term (1 is the plain VAE).
    #[arg(long, default_value_t = 1.0)]
    pub beta: f64,
    /// Seed for initialisation, shuffling and the reparameterisation noise.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Train on only the first N training images.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Run directory for model.safetensors, vae.json, samples.png, reconstructions.png and
    /// interpolation.png.
    #[arg(long, default_value = "runs/vae")]
    pub out: PathBuf,
    /// End with one JSON line of results.
    #[arg(long)]
    pub json: bool,
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
    #[arg(long, default_value_t = 64)]
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
}
