//! The training crate's error type.

use std::path::PathBuf;

/// What can go wrong while training, evaluating or handling checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a readable safetensors checkpoint.
    #[error("{path}: not a readable safetensors checkpoint: {reason}")]
    UnreadableCheckpoint {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The checkpoint lacks a tensor the model needs.
    #[error("{path}: checkpoint has no tensor `{name}` that the model needs")]
    MissingTensor {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor name.
        name: String,
    },
    /// The checkpoint holds a tensor the model does not have.
    #[error("{path}: checkpoint tensor `{name}` matches no model parameter")]
    UnexpectedTensor {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor name.
        name: String,
    },
    /// A checkpoint tensor has the wrong shape.
    #[error("{path}: tensor `{name}` has shape {found:?} but the model needs {expected:?}")]
    ShapeMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// Shape the model needs.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// The loss became NaN or infinite.
    #[error("training diverged: loss is {loss} at epoch {epoch}, batch {batch}")]
    NonFiniteLoss {
        /// 1-based epoch.
        epoch: usize,
        /// 0-based batch within the epoch.
        batch: usize,
        /// The loss value.
        loss: f32,
    },
    /// A misuse of the training API or an invalid setting.
    #[error("{0}")]
    Invalid(String),
    /// Reading data failed.
    #[error(transparent)]
    Data(#[from] ember_data::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// Result with the training [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
