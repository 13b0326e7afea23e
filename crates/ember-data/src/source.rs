//! Opening a dataset from a directory: which kind of data it holds, and its train, validation
//! and test splits with their class names (what `--dataset` / `--data-dir` mean in every
//! command).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::image_folder::sub_folders;
use crate::mnist_family::has_split;
use crate::named_enum::named_enum;
use crate::{
    load_mnist_family, stratified_split, Cifar, CifarKind, ColorMode, CsvDataset, CsvOptions, Dataset, Error,
    ImageFolder, ImageFolderOptions, KnownDataset, LabelledImages, Result, Split, Subset,
};

/// The kinds of data a directory can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// Images in class folders: `DIR/<class>/*` or `DIR/{train,val,test}/<class>/*`.
    Folder,
    /// CIFAR-10 binary batches.
    Cifar10,
    /// CIFAR-100 binary files (fine labels).
    Cifar100,
    /// MNIST IDX files.
    Mnist,
    /// Fashion-MNIST IDX files (the MNIST layout, clothing class names).
    FashionMnist,
    /// The MNIST sample bundled with ember.
    MnistSample,
    /// CSV tables: `DIR/train.csv` (and `val.csv`, `test.csv`) or one `.csv` file; the label is
    /// the last column.
    Csv,
}

impl SourceKind {
    /// Every kind, in the order `--dataset` lists them.
    pub const ALL: [SourceKind; 7] = [
        SourceKind::Folder,
        SourceKind::Cifar10,
        SourceKind::Cifar100,
        SourceKind::Mnist,
        SourceKind::FashionMnist,
        SourceKind::MnistSample,
        SourceKind::Csv,
    ];

    /// The name `--dataset` takes.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Folder => "folder",
            SourceKind::Cifar10 => "cifar10",
            SourceKind::Cifar100 => "cifar100",
            SourceKind::Mnist => "mnist",
            SourceKind::FashionMnist => "fashion-mnist",
            SourceKind::MnistSample => "mnist-sample",
            SourceKind::Csv => "csv",
        }
    }

    /// The known (downloadable or bundled) dataset of this kind, if it is one.
    pub fn known(self) -> Option<KnownDataset> {
        match self {
            SourceKind::Mnist => Some(KnownDataset::Mnist),
            SourceKind::FashionMnist => Some(KnownDataset::FashionMnist),
            SourceKind::MnistSample => Some(KnownDataset::MnistSample),
            _ => None,
        }
    }

    /// What `path` holds, from its files: IDX files (Fashion-MNIST when the directory's name
    /// says so, else MNIST), CIFAR batches, CSV tables, or class folders. Fails naming the path
    /// when it is none of them.
    pub fn detect(path: &Path) -> Result<Self> {
        let invalid = |detail: String| Error::Invalid { what: path.display().to_string(), detail };
        if path.is_file() {
            return if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
                Ok(SourceKind::Csv)
            } else {
                Err(invalid("is a file but not a .csv table; image datasets are directories".into()))
            };
        }
        if !path.is_dir() {
            return Err(invalid("does not exist".into()));
        }
        let has = |name: &str| path.join(name).exists();
        if has_split(path, Split::Train) || has_split(path, Split::Test) {
            let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
            return Ok(if name.contains("fashion") { SourceKind::FashionMnist } else { SourceKind::Mnist });
        }
        if has("data_batch_1.bin") || has("cifar-10-batches-bin") {
            return Ok(SourceKind::Cifar10);
        }
        if (has("train.bin") && has("test.bin")) || has("cifar-100-binary") {
            return Ok(SourceKind::Cifar100);
        }
        if has("train.csv") {
            return Ok(SourceKind::Csv);
        }
        if !sub_folders(path)?.is_empty() {
            return Ok(SourceKind::Folder);
        }
        Err(invalid(
            "holds no dataset ember recognises: class folders of images, MNIST IDX files, CIFAR binary \
             batches or train.csv; name the kind with --dataset"
                .into(),
        ))
    }
}

named_enum!(SourceKind);

/// How [`DataSplits::open`] reads a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceOptions {
    /// Colour of folder images (the model's input channels decide).
    pub color: ColorMode,
    /// Leave out folder images that cannot be decoded (counted in [`DataSplits::skipped`]).
    pub skip_bad_images: bool,
    /// How CSV tables are read.
    pub csv: CsvOptions,
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self { color: ColorMode::Rgb, skip_bad_images: false, csv: CsvOptions::default() }
    }
}

/// The splits of a dataset, with where each came from.
#[derive(Clone)]
pub struct DataSplits {
    /// What the data is.
    pub kind: SourceKind,
    /// Training examples.
    pub train: Arc<dyn Dataset>,
    /// Validation examples, when the source has them or [`DataSplits::carve_validation`] made
    /// them.
    pub val: Option<Arc<dyn Dataset>>,
    /// Test examples, when the source has them.
    pub test: Option<Arc<dyn Dataset>>,
    /// Class names in label order.
    pub class_names: Vec<String>,
    /// Where the training, validation and test examples come from, in words.
    pub origins: SplitOrigins,
    /// Images left out because they could not be decoded.
    pub skipped: Vec<(PathBuf, String)>,
}

impl std::fmt::Debug for DataSplits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataSplits")
            .field("kind", &self.kind)
            .field("train", &self.train.len())
            .field("val", &self.val.as_ref().map(|v| v.len()))
            .field("test", &self.test.as_ref().map(|t| t.len()))
            .field("origins", &self.origins)
            .finish()
    }
}

/// Where each split came from (`"train/ (1000 images)"`, `"10 % of the training images,
/// stratified, seed 42"`, `"none"`), for run headers and `run.json`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SplitOrigins {
    /// Training split.
    pub train: String,
    /// Validation split.
    pub val: String,
    /// Test split.
    pub test: String,
}

fn origin_of(path: &Path, n: usize) -> String {
    format!("{} ({n} examples)", path.display())
}

impl DataSplits {
    /// Opens `path` as `kind`. Folders: `path/{train,val|valid,test}/<class>/*` (any of val and
    /// test may be missing; their classes must equal train's) or, without a `train` folder,
    /// `path/<class>/*` as training images only. CIFAR: the training batches and the test batch.
    /// MNIST family: `path`'s IDX files. CSV: `path/train.csv` (and `val.csv`, `test.csv`) or
    /// the one file `path`.
    pub fn open(kind: SourceKind, path: &Path, options: &SourceOptions) -> Result<Self> {
        match kind {
            SourceKind::Folder => Self::open_folder(path, options),
            SourceKind::Cifar10 | SourceKind::Cifar100 => {
                let cifar = if kind == SourceKind::Cifar10 { CifarKind::Cifar10 } else { CifarKind::Cifar100Fine };
                let train = Cifar::load(path, cifar, Split::Train)?;
                let test = Cifar::load(path, cifar, Split::Test)?;
                let origins = SplitOrigins {
                    train: origin_of(path, train.len()),
                    val: "none".into(),
                    test: format!("{} test batch ({} examples)", path.display(), test.len()),
                };
                Ok(Self {
                    kind,
                    class_names: cifar_names(path, cifar),
                    train: Arc::new(train),
                    val: None,
                    test: Some(Arc::new(test)),
                    origins,
                    skipped: Vec::new(),
                })
            }
            SourceKind::Mnist | SourceKind::FashionMnist | SourceKind::MnistSample => {
                let train = load_mnist_family(path, Split::Train)?;
                let test = load_mnist_family(path, Split::Test)?;
                let names = kind.known().map(|k| k.class_names().map(String::from).to_vec()).unwrap_or_default();
                Ok(Self::from_labelled(kind, train, test, names, &path.display().to_string()))
            }
            SourceKind::Csv => Self::open_csv(path, &options.csv),
        }
    }

    /// Opens `path`, detecting its kind ([`SourceKind::detect`]) unless `kind` names it.
    pub fn open_path(kind: Option<SourceKind>, path: &Path, options: &SourceOptions) -> Result<Self> {
        let kind = match kind {
            Some(k) => k,
            None => SourceKind::detect(path)?,
        };
        Self::open(kind, path, options)
    }

    /// Splits of in-memory grey images with a train and a test half (`origin` names them).
    pub fn from_labelled(
        kind: SourceKind,
        train: LabelledImages,
        test: LabelledImages,
        class_names: Vec<String>,
        origin: &str,
    ) -> Self {
        let origins = SplitOrigins {
            train: format!("{origin} training split ({} examples)", train.len()),
            val: "none".into(),
            test: format!("{origin} test split ({} examples)", test.len()),
        };
        let class_names =
            if class_names.len() == train.classes() { class_names } else { numbered_names(train.classes()) };
        Self {
            kind,
            train: Arc::new(train),
            val: None,
            test: Some(Arc::new(test)),
            class_names,
            origins,
            skipped: Vec::new(),
        }
    }

    fn open_folder(root: &Path, options: &SourceOptions) -> Result<Self> {
        let folder_options =
            ImageFolderOptions { color: options.color, size: None, skip_bad_images: options.skip_bad_images };
        let train_dir = root.join("train");
        let split_layout = train_dir.is_dir();
        let train = ImageFolder::open(if split_layout { &train_dir } else { root }, folder_options)?;
        let class_names = train.class_names().to_vec();
        let mut skipped = train.skipped().to_vec();
        let mut origins =
            SplitOrigins { train: origin_of(train.root(), train.len()), val: "none".into(), test: "none".into() };
        let mut open_other = |names: &[&str], origin: &mut String| -> Result<Option<Arc<dyn Dataset>>> {
            if !split_layout {
                return Ok(None);
            }
            match names.iter().map(|n| root.join(n)).find(|d| d.is_dir()) {
                Some(dir) => {
                    let folder = ImageFolder::with_classes(&dir, &class_names, folder_options)?;
                    *origin = origin_of(&dir, folder.len());
                    skipped.extend_from_slice(folder.skipped());
                    Ok(Some(Arc::new(folder)))
                }
                None => Ok(None),
            }
        };
        let val = open_other(&["val", "valid", "validation"], &mut origins.val)?;
        let test = open_other(&["test"], &mut origins.test)?;
        Ok(Self { kind: SourceKind::Folder, train: Arc::new(train), val, test, class_names, origins, skipped })
    }

    fn open_csv(path: &Path, options: &CsvOptions) -> Result<Self> {
        let (train_path, dir) =
            if path.is_file() { (path.to_path_buf(), None) } else { (path.join("train.csv"), Some(path)) };
        let train = CsvDataset::load(&train_path, options)?;
        let classes = train.classes();
        let mut origins =
            SplitOrigins { train: origin_of(&train_path, train.len()), val: "none".into(), test: "none".into() };
        let other = |name: &str, origin: &mut String| -> Result<Option<Arc<dyn Dataset>>> {
            let Some(p) = dir.map(|d| d.join(name)).filter(|p| p.is_file()) else { return Ok(None) };
            let set = CsvDataset::load(&p, options)?;
            *origin = origin_of(&p, set.len());
            Ok(Some(Arc::new(set)))
        };
        let val = other("val.csv", &mut origins.val)?;
        let test = other("test.csv", &mut origins.test)?;
        let classes = [Some(classes), val.as_ref().map(|v| v.classes()), test.as_ref().map(|t| t.classes())]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(classes);
        Ok(Self {
            kind: SourceKind::Csv,
            train: Arc::new(train),
            val,
            test,
            class_names: numbered_names(classes),
            origins,
            skipped: Vec::new(),
        })
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.class_names.len()
    }

    /// When there is no validation split, moves a stratified `fraction` of the training
    /// examples (seeded) into one, so that validation never uses the test set. Does nothing
    /// when the source has its own validation split.
    pub fn carve_validation(&mut self, fraction: f64, seed: u64) -> Result<()> {
        if self.val.is_some() {
            return Ok(());
        }
        let split = stratified_split(self.train.as_ref(), fraction, seed)?;
        let (n_train, n_val) = (split.train.len(), split.val.len());
        let train_origin = std::mem::take(&mut self.origins.train);
        // `Display` of f64 prints 10.0 as "10" and 12.5 as "12.5".
        let percent = (fraction * 1e4).round() / 1e2;
        self.origins.val = format!("{percent} % of the training examples, stratified, seed {seed} ({n_val} examples)");
        self.origins.train = format!("{train_origin}, less the validation examples ({n_train} left)");
        self.val = Some(Arc::new(Subset::new(self.train.clone(), split.val)?));
        self.train = Arc::new(Subset::new(self.train.clone(), split.train)?);
        Ok(())
    }

    /// Keeps the first `limit` training examples (quick experiments).
    pub fn limit_train(&mut self, limit: usize) -> Result<()> {
        self.train = limit_set(&self.train, limit)?;
        self.origins.train = format!("{}, first {limit}", self.origins.train);
        Ok(())
    }

    /// Keeps the first `limit` test examples.
    pub fn limit_test(&mut self, limit: usize) -> Result<()> {
        if let Some(test) = &self.test {
            self.test = Some(limit_set(test, limit)?);
            self.origins.test = format!("{}, first {limit}", self.origins.test);
        }
        Ok(())
    }
}

fn limit_set(set: &Arc<dyn Dataset>, limit: usize) -> Result<Arc<dyn Dataset>> {
    if limit >= set.len() {
        return Ok(set.clone());
    }
    Ok(Arc::new(Subset::new(set.clone(), (0..limit).collect())?))
}

/// `"0"`, `"1"`, ... for sources without class names.
pub fn numbered_names(classes: usize) -> Vec<String> {
    (0..classes).map(|c| c.to_string()).collect()
}

/// CIFAR's class names from `batches.meta.txt` / `fine_label_names.txt` when present (the
/// official archives ship them), else numbers.
fn cifar_names(dir: &Path, kind: CifarKind) -> Vec<String> {
    let file = match kind {
        CifarKind::Cifar10 => "batches.meta.txt",
        CifarKind::Cifar100Fine => "fine_label_names.txt",
        CifarKind::Cifar100Coarse => "coarse_label_names.txt",
    };
    let candidates =
        [dir.join(file), dir.join("cifar-10-batches-bin").join(file), dir.join("cifar-100-binary").join(file)];
    for path in candidates {
        if let Ok(text) = std::fs::read_to_string(&path) {
            let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
            if names.len() == kind.classes() {
                return names;
            }
        }
    }
    numbered_names(kind.classes())
}

impl ImageFolder {
    /// fastai's `ImageDataLoaders.from_folder` in one call: `root/{train,val,test}/<class>/*`
    /// or `root/<class>/*` as RGB images (see [`DataSplits::open`]), with a stratified, seeded
    /// `valid_pct` of the training images validating when there is no `val` folder.
    pub fn splits(root: impl AsRef<Path>, valid_pct: f64, seed: u64) -> Result<DataSplits> {
        let mut splits = DataSplits::open(SourceKind::Folder, root.as_ref(), &SourceOptions::default())?;
        splits.carve_validation(valid_pct, seed)?;
        Ok(splits)
    }
}
