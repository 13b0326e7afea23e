//! Datasets, splits and a data loader for ember.
//!
//! Reads the MNIST family (MNIST, Fashion-MNIST, KMNIST, ... — all IDX files, gzip or raw),
//! validating every header against the file before trusting it, and serves shuffled,
//! optionally augmented mini-batches as candle tensors. Every failure is an [`Error`] that names
//! the file and the problem.
//!
//! With the `mnist-sample` feature, 8,000 real MNIST digits (6,000 train, 2,000 test; MNIST by
//! LeCun, Cortes and Burges, CC BY-SA 3.0) are compiled in, so examples need no download:
//!
//! ```
//! # #[cfg(feature = "mnist-sample")] {
//! use candle_core::Device;
//! use ember_data::{mnist_sample, DataLoader, Split};
//!
//! let train = mnist_sample(Split::Train)?;
//! assert_eq!((train.len(), train.height(), train.width()), (6000, 28, 28));
//! let loader = DataLoader::new(&train, 64).with_shuffle(42);
//! let first = loader.epoch(0, &Device::Cpu).next().unwrap()?;
//! assert_eq!(first.images.dims(), &[64, 1, 28, 28]);
//! # }
//! # Ok::<(), ember_data::Error>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod error;
mod idx;
mod known;
mod labelled_images;
mod loader;
mod mnist_family;

pub use error::{Error, Result};
pub use idx::{read_idx, IdxArray};
pub use known::{KnownDataset, DATA_DIR_ENV};
pub use labelled_images::LabelledImages;
pub use loader::{Batch, DataLoader};
#[cfg(feature = "mnist-sample")]
pub use mnist_family::mnist_sample;
pub use mnist_family::{load_mnist_family, Split};
