//! Checkpoint I/O for ember, depending on no training crate: safetensors files written
//! atomically and read strictly, and PyTorch checkpoints imported without Python.
//!
//! ```
//! use std::collections::HashMap;
//! use candle_core::{Device, Tensor};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("weights.safetensors");
//! let weight = Tensor::new(&[[1f32, 2.], [3., 4.]], &Device::Cpu)?;
//! let card = HashMap::from([("model".to_string(), "mlp".to_string())]);
//!
//! // Written to `.weights.safetensors.{pid}.tmp`, fsynced, renamed over the target.
//! ember_io::write_safetensors(&[("fc.weight".to_string(), weight)], card, &path)?;
//!
//! let tensors = ember_io::read_safetensors(&path, &Device::Cpu)?;
//! assert_eq!(tensors["fc.weight"].to_vec2::<f32>()?, [[1., 2.], [3., 4.]]);
//! assert_eq!(ember_io::read_metadata(&path)?["model"], "mlp");
//!
//! // Any file, through the same writer: the caller's error type, any content.
//! ember_io::write_atomically(&dir.path().join("notes.txt"), |tmp| {
//!     let io_error = |source| ember_io::IoError { path: tmp.to_path_buf(), source };
//!     std::fs::write(tmp, "done").map_err(|source| ember_io::Error::Io(io_error(source)))
//! })?;
//! assert_eq!(std::fs::read_dir(dir.path())?.count(), 2, "no temporary file is left behind");
//!
//! // The format is detected from the content; PyTorch files read the same way.
//! let (format, read) = ember_io::read_checkpoint(&path)?;
//! assert_eq!((format, read.len()), (ember_io::CheckpointFormat::Safetensors, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - **Atomic writes** ([`write_atomically`]): a file under its final name is always complete;
//!   a killed writer leaves `.{name}.{pid}.tmp`, which [`remove_stale_temporaries`] clears.
//! - **safetensors** ([`write_safetensors`], [`read_safetensors`], [`read_metadata`], which
//!   reads the header alone and checks its declared length before allocating).
//! - **PyTorch import** ([`read_checkpoint`], [`inspect`], [`convert_to_safetensors`]) in the zip
//!   layout (torch >= 1.6) and the legacy pickle layout. The [`pickle`] reader only knows the
//!   globals that rebuild tensors; any other global is refused before anything runs, so a
//!   checkpoint can never execute code ([`Error::RefusedGlobal`]).
//! - **Key renaming** ([`RenameRule`], [`parse_rules`], the presets in [`RENAME_PRESETS`]), so a
//!   checkpoint of another library loads under ember's `state_dict` names.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod atomic;
mod checkpoint_file;
mod error;
mod io_error;
pub mod pickle;
mod pytorch;
mod rename;
mod rename_presets;
mod safetensors_file;

pub use atomic::{is_temporary_name, remove_stale_temporaries, write_atomically};
pub use checkpoint_file::{
    convert_to_safetensors, convert_to_safetensors_with, detect_format, inspect, read_checkpoint, CheckpointFormat,
    TensorInfo,
};
pub use error::{Error, Result};
pub use io_error::IoError;
pub use pytorch::read_pytorch;
pub use rename::{parse_rules, rename, rename_all, rename_unique, RenameRule};
pub use rename_presets::RENAME_PRESETS;
pub use safetensors_file::{read_metadata, read_safetensors, write_safetensors};
