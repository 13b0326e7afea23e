//! The fine-tuning crate's error type.

use std::path::PathBuf;

/// What can go wrong while importing or converting a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is neither safetensors nor a PyTorch checkpoint.
    #[error("{path}: not a checkpoint ember can read ({detail})")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// The pickle names a global that is not one of the known tensor-rebuilding functions;
    /// nothing was called.
    #[error("{path}: refusing to load: the pickle references `{module}.{name}`, which is not a known tensor-rebuild function (a checkpoint must never run code)")]
    RefusedGlobal {
        /// The file.
        path: PathBuf,
        /// The global's module.
        module: String,
        /// The global's name.
        name: String,
    },
    /// The pickle stream is malformed or uses an unsupported opcode.
    #[error("{path}: malformed pickle at byte {offset}: {detail}")]
    Pickle {
        /// The file.
        path: PathBuf,
        /// Byte offset in the pickle stream.
        offset: usize,
        /// What is wrong.
        detail: String,
    },
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
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// Result with the fine-tuning [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
