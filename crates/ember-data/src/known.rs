//! Datasets ember knows by name, and where it looks for them.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::mnist_family::has_split;
use crate::{load_mnist_family, Error, LabelledImages, Result, Split};

/// Environment variable naming a directory that holds one sub-directory per dataset
/// (`$EMBER_DATA_DIR/fashion-mnist/train-images-idx3-ubyte.gz`, ...).
pub const DATA_DIR_ENV: &str = "EMBER_DATA_DIR";

/// A dataset ember can find by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KnownDataset {
    /// 8,000 MNIST digits bundled with ember (needs the `mnist-sample` feature).
    MnistSample,
    /// Handwritten digits, 60,000 train / 10,000 test.
    Mnist,
    /// Zalando's clothing images, 60,000 train / 10,000 test.
    FashionMnist,
}

impl KnownDataset {
    /// Every known dataset.
    pub const ALL: [KnownDataset; 3] = [KnownDataset::MnistSample, KnownDataset::Mnist, KnownDataset::FashionMnist];

    /// The dataset's name (`mnist-sample`, `mnist`, `fashion-mnist`).
    pub fn name(self) -> &'static str {
        match self {
            KnownDataset::MnistSample => "mnist-sample",
            KnownDataset::Mnist => "mnist",
            KnownDataset::FashionMnist => "fashion-mnist",
        }
    }

    /// Human-readable class names, in label order.
    pub fn class_names(self) -> [&'static str; 10] {
        match self {
            KnownDataset::MnistSample | KnownDataset::Mnist => ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            KnownDataset::FashionMnist => [
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
        }
    }

    /// Directories searched, in order, when no `--data-dir` is given: `$EMBER_DATA_DIR/<name>`,
    /// then the system location Debian's dataset packages use (`/usr/share/datasets/<name>`).
    pub fn search_dirs(self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let Some(root) = std::env::var_os(DATA_DIR_ENV) {
            dirs.push(PathBuf::from(root).join(self.name()));
        }
        dirs.push(Path::new("/usr/share/datasets").join(self.name()));
        dirs
    }

    /// Loads `split`, from `data_dir` when given, else from the bundled copy or the search dirs.
    pub fn load(self, data_dir: Option<&Path>, split: Split) -> Result<LabelledImages> {
        if let Some(dir) = data_dir {
            return load_mnist_family(dir, split);
        }
        if self == KnownDataset::MnistSample {
            #[cfg(feature = "mnist-sample")]
            return crate::mnist_sample(split);
        }
        let tried = self.search_dirs();
        match tried.iter().find(|d| has_split(d, split)) {
            Some(dir) => load_mnist_family(dir, split),
            None => Err(Error::DatasetNotFound {
                dataset: self.name().to_string(),
                tried: tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
            }),
        }
    }
}

impl FromStr for KnownDataset {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| Error::UnknownDataset { name: s.to_string(), known: Self::ALL.map(|d| d.name()).join(", ") })
    }
}

impl std::fmt::Display for KnownDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
