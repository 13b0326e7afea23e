//! Datasets, splits and a parallel data loader for ember.
//!
//! Sources behind one [`Dataset`] trait: the MNIST family (IDX files, gzip or raw, every header
//! checked against the file before it is trusted), CIFAR-10/100 binary batches ([`Cifar`]),
//! folders of images ([`ImageFolder`]) and CSV tables ([`CsvDataset`]). [`DataSplits`] opens any
//! of them from a directory ([`SourceKind::detect`] tells which) as train, validation and test
//! splits with class names and where each split came from; [`ImageFolder::splits`] is fastai's
//! `from_folder` in one call. Seeded splits
//! ([`random_split`], [`stratified_split`], [`k_fold`], [`per_class_subset`]). Known datasets
//! are found by name ([`KnownDataset`]) in local directories and, only when asked, downloaded
//! over HTTPS with SHA-256 checks. A [`DataLoader`] serves shuffled, augmented mini-batches as
//! candle tensors from background workers, identically for any number of workers. Every
//! failure is an [`Error`] that names the file and the problem.
//!
//! With the `mnist-sample` feature, 8,000 real MNIST digits (6,000 train, 2,000 test; MNIST by
//! LeCun, Cortes and Burges, CC BY-SA 3.0) are compiled in, so examples need no download:
//!
//! ```
//! # #[cfg(feature = "mnist-sample")] {
//! use std::sync::Arc;
//! use candle_core::Device;
//! use ember_data::{mnist_sample, DataLoader, Split};
//!
//! let train = mnist_sample(Split::Train)?;
//! assert_eq!((train.len(), train.height(), train.width()), (6000, 28, 28));
//! let loader = DataLoader::new(Arc::new(train), 64).with_shuffle(42).with_workers(2);
//! let first = loader.epoch(0, &Device::Cpu).next().unwrap()?;
//! assert_eq!(first.images.dims(), &[64, 1, 28, 28]);
//! # }
//! # Ok::<(), ember_data::Error>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod cifar;
mod csv_table;
mod dataset;
#[cfg(feature = "download")]
mod download;
mod error;
mod idx;
mod image_decode;
mod image_folder;
mod known;
mod labelled_images;
mod loader;
mod mnist_family;
mod named_enum;
mod source;
mod splits;

pub use cifar::{Cifar, CifarKind};
pub use csv_table::{CsvDataset, CsvOptions, LabelColumn, MAX_CLASSES};
pub use dataset::{Dataset, Example, Features, Subset};
#[cfg(feature = "download")]
pub use download::{download, sha256_of, Progress, ATTEMPTS};
pub use ember_io::IoError;
pub use error::{Error, Result};
pub use idx::{parse_idx, read_idx, IdxArray, MAX_IDX_BYTES};
pub use image_decode::{decode_image, read_image, MAX_DECODE_ALLOC, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE};
pub use image_folder::{ColorMode, ImageFolder, ImageFolderOptions, IMAGE_EXTENSIONS};
pub use known::{KnownDataset, RemoteFile, DATA_DIR_ENV, HOME_ENV};
pub use labelled_images::LabelledImages;
pub use loader::{Batch, Batches, DataLoader, Shard, ShardTail};
#[cfg(feature = "mnist-sample")]
pub use mnist_family::mnist_sample;
pub use mnist_family::{load_mnist_family, Split};
pub use source::{numbered_names, DataSplits, SourceKind, SourceOptions, SplitOrigins};
pub use splits::{k_fold, per_class_subset, random_split, stratified_split, SplitIndices};
