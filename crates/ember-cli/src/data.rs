//! What `--dataset` / `--data-dir` mean in every command, and how a model's input is made from
//! the data: colour, size, the train and eval transforms and the normalisation of its
//! preprocessing.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use ember_augment::Pipeline;
use ember_data::{
    ColorMode, DataLoader, DataSplits, Dataset, Features, KnownDataset, LabelledImages, SourceKind, SourceOptions,
    Split,
};
use ember_zoo::Preprocessing;

/// Opens the data a command was pointed at: `data_dir` as `dataset` (detected from its files
/// when not named), or a known dataset by name (bundled, found locally or downloaded); with
/// neither, the bundled MNIST sample.
pub fn open(
    dataset: Option<&str>,
    data_dir: Option<&Path>,
    color: ColorMode,
    skip_bad_images: bool,
) -> anyhow::Result<DataSplits> {
    open_with(dataset, data_dir, color, skip_bad_images, false)
}

/// [`open`] for commands that score the test split only (`eval`, `ensemble`): an MNIST-family
/// directory holding only the two test files is enough.
pub fn open_for_test(
    dataset: Option<&str>,
    data_dir: Option<&Path>,
    color: ColorMode,
    skip_bad_images: bool,
) -> anyhow::Result<DataSplits> {
    open_with(dataset, data_dir, color, skip_bad_images, true)
}

fn open_with(
    dataset: Option<&str>,
    data_dir: Option<&Path>,
    color: ColorMode,
    skip_bad_images: bool,
    test_only: bool,
) -> anyhow::Result<DataSplits> {
    let kind: Option<SourceKind> = dataset.map(str::parse).transpose()?;
    let options = SourceOptions { color, skip_bad_images, ..SourceOptions::default() };
    match (kind, data_dir) {
        (Some(kind), None) => {
            let known = kind.known().with_context(|| {
                format!(
                    "--dataset {kind} needs --data-dir (only mnist-sample, mnist and fashion-mnist are found by name)"
                )
            })?;
            open_known(kind, known, None, test_only)
        }
        (None, None) => open_known(SourceKind::MnistSample, KnownDataset::MnistSample, None, test_only),
        (Some(kind), Some(dir)) if kind.known().is_some() => {
            open_known(kind, kind.known().unwrap_or(KnownDataset::Mnist), Some(dir), test_only)
        }
        (None, Some(dir)) if test_only && has_only_test_idx(dir) => {
            open_known(SourceKind::Mnist, KnownDataset::Mnist, Some(dir), test_only)
        }
        (kind, Some(dir)) => Ok(DataSplits::open_path(kind, dir, &options)?),
    }
}

/// Whether `dir` holds MNIST test files but no training files.
fn has_only_test_idx(dir: &Path) -> bool {
    let has = |stem: &str| dir.join(stem).is_file() || dir.join(format!("{stem}.gz")).is_file();
    has("t10k-images-idx3-ubyte") && !has("train-images-idx3-ubyte")
}

/// Loads a split of a known dataset: from `data_dir`, the bundled sample or the usual
/// directories, else downloaded into the cache with a progress line on stderr.
pub fn load_split(dataset: KnownDataset, data_dir: Option<&Path>, split: Split) -> anyhow::Result<LabelledImages> {
    let mut last_file = String::new();
    let mut progress = |file: &str, done: u64, total: Option<u64>| {
        if file != last_file {
            last_file = file.to_string();
            eprintln!();
        }
        match total {
            Some(t) if t > 0 => {
                eprint!("\rdownloading {file}: {:>5.1} % of {:.1} MB", done as f64 * 100.0 / t as f64, t as f64 / 1e6)
            }
            _ => eprint!("\rdownloading {file}: {:.1} MB", done as f64 / 1e6),
        }
        let _ = std::io::stderr().flush();
    };
    let set = dataset.load_or_download(data_dir, split, &mut progress)?;
    if !last_file.is_empty() {
        eprintln!();
    }
    Ok(set)
}

fn open_known(
    kind: SourceKind,
    known: KnownDataset,
    dir: Option<&Path>,
    test_only: bool,
) -> anyhow::Result<DataSplits> {
    // Training images first, so a broken training file is the one an error names. Scoring
    // needs none: their place is then taken by the test set's, unused.
    let train = match dir {
        Some(d) if test_only && has_only_test_idx(d) => None,
        _ => Some(load_split(known, dir, ember_data::Split::Train)?),
    };
    let test = load_split(known, dir, ember_data::Split::Test)?;
    let train = train.unwrap_or_else(|| test.clone());
    let names = known.class_names().map(String::from).to_vec();
    let origin = dir.map_or_else(|| known.to_string(), |d| d.display().to_string());
    Ok(DataSplits::from_labelled(kind, train, test, names, &origin))
}

/// The `(channels, height, width)` of the source's examples when they all have one size
/// (IDX, CIFAR), `None` for image folders (every image its own size) and tables.
pub fn fixed_input(data: &DataSplits) -> anyhow::Result<Option<(usize, usize, usize)>> {
    if data.kind == SourceKind::Folder {
        return Ok(None);
    }
    let first = data.train.get(0)?;
    Ok(match first.features {
        Features::Gray(g) => Some((1, g.height() as usize, g.width() as usize)),
        Features::Rgb(c) => Some((3, c.height() as usize, c.width() as usize)),
        Features::Vector(v) => Some((1, 1, v.len())),
    })
}

/// How examples become a model's input.
#[derive(Debug, Clone, PartialEq)]
pub struct InputPlan {
    /// Model input `(channels, side, side)`.
    pub input: (usize, usize, usize),
    /// Normalisation and evaluation crop.
    pub preprocessing: Preprocessing,
    /// The source's own example shape, when fixed.
    pub fixed: Option<(usize, usize, usize)>,
    /// Tabular rows (no image transforms).
    pub tabular: bool,
    /// Evaluation resize of the shorter side instead of `side / crop_pct`.
    pub resize: Option<u32>,
}

impl InputPlan {
    /// Plans `channels x size x size` inputs for `data` (for tables: the row as it is).
    pub fn new(data: &DataSplits, channels: usize, size: usize, preprocessing: Preprocessing) -> anyhow::Result<Self> {
        let fixed = fixed_input(data)?;
        let tabular = data.kind == SourceKind::Csv;
        let input = match fixed {
            Some(shape) if tabular => shape,
            _ => (channels, size, size),
        };
        Ok(Self { input, preprocessing, fixed, tabular, resize: None })
    }

    /// Plans `input` for image files of any size (`predict`).
    pub fn for_files(input: (usize, usize, usize), preprocessing: Preprocessing) -> Self {
        Self { input, preprocessing, fixed: None, tabular: false, resize: None }
    }

    fn side(&self) -> u32 {
        self.input.1 as u32
    }

    /// Whether the source's images already have the model's size.
    fn same_size(&self) -> bool {
        self.fixed.is_some_and(|(_, h, w)| (h, w) == (self.input.1, self.input.2))
    }

    /// The training transform: `ops` when given (after a resize of fixed-size images that
    /// differ from the model's size), else random resized crop + horizontal flip for folders
    /// and `default_ops` for fixed-size sources.
    pub fn train_ops(&self, ops: Option<&str>, default_ops: &str) -> String {
        let s = self.side();
        let chosen = match (ops, self.fixed) {
            (Some(o), _) => o.to_string(),
            (None, None) => format!("resized-crop:{s},hflip"),
            (None, Some(_)) => default_ops.to_string(),
        };
        match self.fixed {
            Some(_) if !self.same_size() => join_ops(&format!("resize:{s}"), &chosen),
            _ => chosen,
        }
    }

    /// The evaluation transform: resize the shorter side to `side / crop_pct`, centre-crop
    /// `side` (folders); resize fixed-size images that differ from the model's size.
    pub fn eval_ops(&self) -> String {
        let s = self.side();
        match self.fixed {
            None => format!(
                "resize-short:{},center-crop:{s}",
                self.resize.unwrap_or_else(|| self.preprocessing.resize_for(s))
            ),
            Some(_) if !self.same_size() => format!("resize:{s}"),
            Some(_) => "none".into(),
        }
    }

    fn loader(&self, data: Arc<dyn Dataset>, batch_size: usize, ops: &str) -> anyhow::Result<DataLoader> {
        let mut loader = DataLoader::new(data, batch_size);
        if self.tabular {
            return Ok(loader);
        }
        loader = loader.with_color(ColorMode::for_channels(self.input.0)).with_normalization(
            &self.preprocessing.mean_for(self.input.0),
            &self.preprocessing.std_for(self.input.0),
        )?;
        let pipeline = Pipeline::parse(ops)?;
        if !pipeline.is_identity() {
            let pipeline = Arc::new(pipeline);
            loader = loader.with_transform(pipeline.clone()).with_rgb_transform(pipeline);
        }
        Ok(loader)
    }

    /// Shuffled, augmented training batches decoded by `workers` threads.
    pub fn train_loader(
        &self,
        data: Arc<dyn Dataset>,
        batch_size: usize,
        seed: u64,
        ops: &str,
        workers: usize,
    ) -> anyhow::Result<DataLoader> {
        let eval = Arc::new(Pipeline::parse(&self.eval_ops())?);
        Ok(self
            .loader(data, batch_size, ops)?
            .with_shuffle(seed)
            .with_workers(workers)
            .with_eval_transforms(eval.clone(), eval))
    }

    /// Evaluation batches in order.
    pub fn eval_loader(&self, data: Arc<dyn Dataset>, batch_size: usize, workers: usize) -> anyhow::Result<DataLoader> {
        Ok(self.loader(data, batch_size, &self.eval_ops())?.with_workers(workers))
    }
}

fn join_ops(first: &str, rest: &str) -> String {
    if rest.trim().is_empty() || rest.trim() == "none" {
        first.to_string()
    } else {
        format!("{first},{rest}")
    }
}

/// Images per evaluation batch for inputs of `(c, h, w)`: 100 for small images, fewer for big
/// ones so a batch's input stays under 4 Mi values (27 at 3x224x224): a 224 px batch of 100
/// holds gigabytes of activations. `train` and `eval` both use it, so they score the same
/// batches.
pub fn eval_batch(input: (usize, usize, usize)) -> usize {
    let values = input.0.saturating_mul(input.1).saturating_mul(input.2).max(1);
    ((4 << 20) / values).clamp(1, 100)
}

/// Loader threads for decoding and augmenting: the cores minus the one that trains, at least 1.
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1).max(1)
}

/// Image files as a dataset (label 0 each), read through ember-data's limited decoder: what
/// `predict` runs the evaluation transform over.
pub struct ImageFiles(pub Vec<std::path::PathBuf>);

impl Dataset for ImageFiles {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn get(&self, index: usize) -> ember_data::Result<ember_data::Example> {
        let path = self.0.get(index).ok_or_else(|| ember_data::Error::Invalid {
            what: "image files".into(),
            detail: format!("index {index} out of range"),
        })?;
        let image = ember_data::read_image(path)?;
        Ok(ember_data::Example { features: Features::Rgb(image.to_rgb8()), label: 0 })
    }

    fn classes(&self) -> usize {
        1
    }

    fn origin(&self, index: usize) -> String {
        self.0.get(index).map_or_else(|| format!("image {index}"), |p| p.display().to_string())
    }
}
