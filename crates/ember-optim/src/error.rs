//! The optimizer crate's error type.

use std::path::PathBuf;

/// What can go wrong while building, stepping, saving or restoring an optimizer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The same parameter name appears twice.
    #[error("parameter `{name}` is given twice")]
    DuplicateParameter {
        /// The parameter.
        name: String,
    },
    /// A parameter cannot be optimized (its dtype: f32 and f64 only).
    #[error("parameter `{name}`: {detail}")]
    UnsupportedParameter {
        /// The parameter.
        name: String,
        /// Why.
        detail: String,
    },
    /// A hyper-parameter is out of its range, or contradicts another one.
    #[error("{optimizer}: {setting} {value} {requirement}")]
    InvalidConfig {
        /// Optimizer or schedule name (`"adam"`, `"one-cycle"`, ...).
        optimizer: &'static str,
        /// The hyper-parameter at fault, as its config field is named (`"beta1"`).
        setting: &'static str,
        /// Its value.
        value: f64,
        /// What it must be (`"must lie in [0, 1)"`).
        requirement: &'static str,
    },
    /// Saved state lacks a buffer a parameter needs.
    #[error("optimizer state: no buffer `{buffer}` for parameter `{param}`")]
    MissingBuffer {
        /// The parameter.
        param: String,
        /// The buffer's full name.
        buffer: String,
    },
    /// Saved state holds a buffer of the wrong shape.
    #[error("optimizer state: buffer `{buffer}` has shape {found:?} but parameter `{param}` needs {expected:?}")]
    BufferShape {
        /// The parameter.
        param: String,
        /// The buffer's full name.
        buffer: String,
        /// Shape the parameter needs.
        expected: Vec<usize>,
        /// Shape in the state.
        found: Vec<usize>,
    },
    /// Saved state holds a buffer no parameter owns.
    #[error("optimizer state: buffer `{buffer}` belongs to no parameter of this optimizer")]
    UnknownBuffer {
        /// The buffer's full name.
        buffer: String,
    },
    /// Saved state was written by another optimizer or another grouping of parameters.
    #[error("optimizer state: {detail}")]
    StateMismatch {
        /// What differs.
        detail: String,
    },
    /// A state file could not be read or written.
    #[error("{path}: {detail}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// Syncing or renaming a state file into place failed (the previous file is intact).
    #[error(transparent)]
    Io(#[from] ember_io::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// Result with the optimizer [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
