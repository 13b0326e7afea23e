//! The I/O crate's error type: every failure names the file (or rule) and, where there is one,
//! the tensor at fault.

use std::path::PathBuf;

use crate::IoError;

/// What can go wrong while reading or writing a checkpoint, or renaming its tensors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read, written, synced or renamed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The file is not a readable safetensors file.
    #[error("{path}: not a readable safetensors checkpoint: {reason}")]
    UnreadableCheckpoint {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A safetensors file could not be written (the previous file under its name is intact).
    #[error("{path}: cannot write the checkpoint: {reason}")]
    WriteCheckpoint {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
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
    /// A renaming rule does not parse, or its regular expression does not compile.
    #[error("renaming rule `{pattern}`: {detail}")]
    BadRule {
        /// The pattern.
        pattern: String,
        /// What is wrong.
        detail: String,
    },
    /// Renaming maps two of a checkpoint's tensors onto one name.
    #[error("{source_name}: renaming maps both `{first}` and `{second}` to `{renamed}`")]
    RenameCollision {
        /// The checkpoint (file name or description).
        source_name: String,
        /// The first tensor's original name.
        first: String,
        /// The second tensor's original name.
        second: String,
        /// The name both get.
        renamed: String,
    },
    /// A tensor operation failed (building a tensor from a file's bytes).
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// Result with the I/O [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
