//! The fine-tuning crate's error type.

use std::path::PathBuf;

/// What can go wrong while importing, loading, fine-tuning or fusing models.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read or written.
    #[error("{path}")]
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
    /// Strict loading found names or shapes that do not match the model; nothing was loaded.
    #[error("{source_name}: does not match the model ({summary}); nothing was loaded")]
    StateMismatch {
        /// The checkpoint (file name or description).
        source_name: String,
        /// Missing, unexpected and mismatched tensors, as a short list.
        summary: String,
    },
    /// A renaming rule's regular expression does not compile.
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
    /// A setting or argument is out of range or inconsistent.
    #[error("{what}: {detail}")]
    Invalid {
        /// What is wrong (a setting, a model, a tensor).
        what: String,
        /// Why.
        detail: String,
    },
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
