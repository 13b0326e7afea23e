//! The failure to read, write, sync or rename a file, named by its path: one type that every
//! ember crate touching files reports it with (each crate's error enum wraps it as `Io`).

use std::path::PathBuf;

/// A file could not be read, written, synced or renamed; shown as its path, with the
/// operating system's error as the source.
#[derive(Debug, thiserror::Error)]
#[error("{path}")]
pub struct IoError {
    /// The file.
    pub path: PathBuf,
    /// The underlying error.
    pub source: std::io::Error,
}
