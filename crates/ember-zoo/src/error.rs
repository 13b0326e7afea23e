//! The zoo's error type.

use crate::task::Task;

/// What can go wrong while looking up or building a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No model of that name.
    #[error("unknown model `{name}` (known: {known})")]
    UnknownModel {
        /// The name given.
        name: String,
        /// Known names, comma-separated.
        known: String,
    },
    /// The options do not suit the model.
    #[error("model `{name}`: {reason}")]
    BadOptions {
        /// The model's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The model is not of the task asked for.
    #[error("model `{name}` is not a {task} model")]
    WrongTask {
        /// The model's name.
        name: String,
        /// The task asked for.
        task: Task,
    },
    /// Creating or reading the model's tensors failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// Result with the zoo [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
