//! The zoo's error type.

/// What can go wrong while building a model.
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
    /// Creating or reading the model's tensors failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// Result with the zoo [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
