//! The fine-tuning crate's error type.

use std::path::PathBuf;

/// What can go wrong while importing, loading, fine-tuning or fusing models.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read or written.
    #[error(transparent)]
    Io(#[from] ember_io::IoError),
    /// A tensor references storage the file does not hold, or more of it than there is.
    #[error("{path}: tensor `{tensor}`: {detail}")]
    BadTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// What is wrong.
        detail: String,
    },
    /// Strict loading found names or shapes that do not match the model; nothing was loaded.
    #[error("{source_name}: does not match the model ({summary}); nothing was loaded")]
    StateMismatch {
        /// The checkpoint (file name or description).
        source_name: String,
        /// Missing, unexpected and mismatched tensors, as a short list.
        summary: String,
    },
    /// A setting or argument is out of range or inconsistent.
    #[error("{what}: {detail}")]
    Invalid {
        /// What is wrong (a setting, a model, a tensor).
        what: String,
        /// Why.
        detail: String,
    },
    /// A checkpoint could not be read, written or renamed (import, conversion, key renaming).
    #[error(transparent)]
    Checkpoint(#[from] ember_io::Error),
    /// A dataset could not be read.
    #[error(transparent)]
    Data(#[from] ember_data::Error),
    /// An image transform failed.
    #[error(transparent)]
    Augment(#[from] ember_augment::Error),
    /// A model could not be built.
    #[error(transparent)]
    Zoo(#[from] ember_zoo::Error),
    /// An optimizer could not be built or stepped.
    #[error(transparent)]
    Optim(#[from] ember_optim::Error),
    /// Training or evaluation failed.
    #[error(transparent)]
    Train(#[from] ember_train::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

impl Error {
    /// An [`Error::Invalid`].
    pub(crate) fn invalid(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid { what: what.into(), detail: detail.into() }
    }
}

/// Result with the fine-tuning [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
