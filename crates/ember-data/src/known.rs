//! Datasets ember knows by name, where it looks for them, and where it downloads them from.

use std::path::{Path, PathBuf};

use crate::mnist_family::has_split;
use crate::named_enum::named_enum;
use crate::{load_mnist_family, Error, LabelledImages, Result, Split};

/// Environment variable naming a directory that holds one sub-directory per dataset
/// (`$EMBER_DATA_DIR/fashion-mnist/train-images-idx3-ubyte.gz`, ...).
pub const DATA_DIR_ENV: &str = "EMBER_DATA_DIR";
/// Environment variable naming ember's cache directory (default `~/.cache/ember`); downloads go
/// to `$EMBER_HOME/datasets/<name>`.
pub const HOME_ENV: &str = "EMBER_HOME";

/// A file of a dataset with its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteFile {
    /// File name (also its name under the mirror's base address).
    pub name: &'static str,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: &'static str,
}

const MNIST_FILES: [RemoteFile; 4] = [
    RemoteFile {
        name: "train-images-idx3-ubyte.gz",
        sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    },
    RemoteFile {
        name: "train-labels-idx1-ubyte.gz",
        sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    },
    RemoteFile {
        name: "t10k-images-idx3-ubyte.gz",
        sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    },
    RemoteFile {
        name: "t10k-labels-idx1-ubyte.gz",
        sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
];

const FASHION_FILES: [RemoteFile; 4] = [
    RemoteFile {
        name: "train-images-idx3-ubyte.gz",
        sha256: "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
    },
    RemoteFile {
        name: "train-labels-idx1-ubyte.gz",
        sha256: "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
    },
    RemoteFile {
        name: "t10k-images-idx3-ubyte.gz",
        sha256: "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
    },
    RemoteFile {
        name: "t10k-labels-idx1-ubyte.gz",
        sha256: "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
    },
];

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

    /// Base addresses (HTTPS) the files can be downloaded from, and the files with checksums.
    pub fn remote(self) -> Option<(&'static [&'static str], &'static [RemoteFile])> {
        match self {
            KnownDataset::MnistSample => None,
            KnownDataset::Mnist => Some((&["https://ossci-datasets.s3.amazonaws.com/mnist/"], &MNIST_FILES)),
            KnownDataset::FashionMnist => {
                Some((&["https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"], &FASHION_FILES))
            }
        }
    }

    /// The cache directory this dataset is downloaded to: `$EMBER_HOME/datasets/<name>`, with
    /// `EMBER_HOME` defaulting to `~/.cache/ember`.
    pub fn cache_dir(self) -> Option<PathBuf> {
        let home = std::env::var_os(HOME_ENV)
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("ember")))?;
        Some(home.join("datasets").join(self.name()))
    }

    /// Directories searched, in order, when no `--data-dir` is given: `$EMBER_DATA_DIR/<name>`,
    /// the cache directory, then the system location Debian's dataset packages use
    /// (`/usr/share/datasets/<name>`).
    pub fn search_dirs(self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let Some(root) = std::env::var_os(DATA_DIR_ENV) {
            dirs.push(PathBuf::from(root).join(self.name()));
        }
        dirs.extend(self.cache_dir());
        dirs.push(Path::new("/usr/share/datasets").join(self.name()));
        dirs
    }

    /// The first search directory holding `split`, if any.
    pub fn locate(self, split: Split) -> Option<PathBuf> {
        self.search_dirs().into_iter().find(|d| has_split(d, split))
    }

    fn not_found(self, download: String) -> Error {
        Error::DatasetNotFound {
            dataset: self.name().to_string(),
            tried: self.search_dirs().iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
            files: "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz".into(),
            download,
        }
    }

    /// Loads `split` from `data_dir` when given, else from the bundled copy or the search
    /// directories. Never touches the network (see [`KnownDataset::load_or_download`]).
    pub fn load(self, data_dir: Option<&Path>, split: Split) -> Result<LabelledImages> {
        if let Some(dir) = data_dir {
            return load_mnist_family(dir, split);
        }
        if self == KnownDataset::MnistSample {
            #[cfg(feature = "mnist-sample")]
            return crate::mnist_sample(split);
        }
        match self.locate(split) {
            Some(dir) => load_mnist_family(&dir, split),
            None => Err(self.not_found(String::new())),
        }
    }

    /// [`KnownDataset::load`], but when the dataset is nowhere to be found, downloads it into
    /// the cache directory first (HTTPS, SHA-256 checked; `progress` sees each file's bytes).
    #[cfg(feature = "download")]
    pub fn load_or_download(
        self,
        data_dir: Option<&Path>,
        split: Split,
        progress: &mut dyn FnMut(&str, u64, Option<u64>),
    ) -> Result<LabelledImages> {
        match self.load(data_dir, split) {
            Err(Error::DatasetNotFound { .. }) => {}
            other => return other,
        }
        let Some(dir) = self.cache_dir() else {
            return Err(self.not_found("; no cache directory (set EMBER_HOME)".into()));
        };
        match self.download_to(&dir, None, progress) {
            Ok(()) => load_mnist_family(&dir, split),
            Err(e) => Err(self.not_found(format!("; the download failed ({e})"))),
        }
    }

    /// Downloads every file of the dataset into `dir` (skipping files already there with the
    /// right checksum), from `mirror` or the dataset's own addresses.
    #[cfg(feature = "download")]
    pub fn download_to(
        self,
        dir: &Path,
        mirror: Option<&str>,
        progress: &mut dyn FnMut(&str, u64, Option<u64>),
    ) -> Result<()> {
        let Some((bases, files)) = self.remote() else {
            return Err(Error::Invalid { what: self.name().into(), detail: "has no download address".into() });
        };
        let bases: Vec<&str> = mirror.map_or_else(|| bases.to_vec(), |m| vec![m]);
        for file in files {
            let dest = dir.join(file.name);
            if dest.is_file() && crate::download::sha256_of(&dest)? == file.sha256 {
                continue;
            }
            let mut last = None;
            for base in &bases {
                let url = format!("{}/{}", base.trim_end_matches('/'), file.name);
                match crate::download(&url, &dest, file.sha256, &mut |done, total| progress(file.name, done, total)) {
                    Ok(_) => {
                        last = None;
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if let Some(e) = last {
                return Err(e);
            }
        }
        Ok(())
    }
}

named_enum!(KnownDataset);
