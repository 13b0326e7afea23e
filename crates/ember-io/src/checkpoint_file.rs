//! Any checkpoint file ember reads — safetensors or PyTorch — as named tensors.

use std::path::Path;

use candle_core::{DType, Tensor};

use crate::rename::{rename_unique, RenameRule};
use crate::{pytorch, Error, Result};

/// The layout of a checkpoint file, detected from its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// safetensors.
    Safetensors,
    /// PyTorch zip (torch >= 1.6).
    PytorchZip,
    /// PyTorch legacy pickle.
    PytorchLegacy,
}

/// Name, shape and dtype of one tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The name (a PyTorch `state_dict` key).
    pub name: String,
    /// The shape.
    pub shape: Vec<usize>,
    /// The element type.
    pub dtype: DType,
}

/// Detects the format of `bytes`.
pub fn detect_format(bytes: &[u8]) -> Option<CheckpointFormat> {
    if bytes.starts_with(b"PK\x03\x04") {
        return Some(CheckpointFormat::PytorchZip);
    }
    if bytes.starts_with(&[0x80, 0x02, 0x8a, 0x0a]) {
        return Some(CheckpointFormat::PytorchLegacy);
    }
    let header_len = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))?;
    if bytes.get(8) == Some(&b'{') && header_len as usize <= bytes.len().saturating_sub(8) {
        return Some(CheckpointFormat::Safetensors);
    }
    None
}

/// Reads every tensor of a safetensors or PyTorch checkpoint (CPU), in file order for PyTorch
/// files and name order for safetensors.
pub fn read_checkpoint(path: &Path) -> Result<(CheckpointFormat, Vec<(String, Tensor)>)> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io(crate::IoError { path: path.to_path_buf(), source }))?;
    let format = detect_format(&bytes)
        .ok_or_else(|| Error::UnknownFormat { path: path.to_path_buf(), detail: "unrecognised header".into() })?;
    let tensors = match format {
        CheckpointFormat::Safetensors => {
            let mut v: Vec<(String, Tensor)> = candle_core::safetensors::load_buffer(&bytes, &candle_core::Device::Cpu)
                .map_err(|e| Error::UnknownFormat { path: path.to_path_buf(), detail: e.to_string() })?
                .into_iter()
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        }
        CheckpointFormat::PytorchZip | CheckpointFormat::PytorchLegacy => pytorch::read_pytorch(path, &bytes)?,
    };
    Ok((format, tensors))
}

/// Names, shapes and dtypes of a checkpoint's tensors.
pub fn inspect(path: &Path) -> Result<(CheckpointFormat, Vec<TensorInfo>)> {
    let (format, tensors) = read_checkpoint(path)?;
    Ok((
        format,
        tensors.into_iter().map(|(name, t)| TensorInfo { name, shape: t.dims().to_vec(), dtype: t.dtype() }).collect(),
    ))
}

/// Converts any checkpoint ember reads into a safetensors file at `out`, atomically (temporary
/// file, fsync, rename; see [`write_atomically`](crate::write_atomically)). Returns the number of
/// tensors written.
pub fn convert_to_safetensors(input: &Path, out: &Path) -> Result<usize> {
    convert_to_safetensors_with(input, out, &[])
}

/// [`convert_to_safetensors`] with the tensors renamed by `rules` (in order, as loading applies
/// them), so the file loads with no rules. Two tensors renamed to one name are an error
/// ([`Error::RenameCollision`](crate::Error::RenameCollision)) and nothing is written.
pub fn convert_to_safetensors_with(input: &Path, out: &Path, rules: &[RenameRule]) -> Result<usize> {
    let (_, tensors) = read_checkpoint(input)?;
    let names: Vec<String> = tensors.iter().map(|(n, _)| n.clone()).collect();
    let renamed = rename_unique(rules, &names, &input.display().to_string())?;
    let map: std::collections::HashMap<String, Tensor> =
        renamed.into_iter().zip(tensors).map(|(name, (_, t))| (name, t)).collect();
    crate::write_atomically(out, |tmp| {
        candle_core::safetensors::save(&map, tmp)
            .map_err(|e| Error::WriteCheckpoint { path: out.to_path_buf(), reason: e.to_string() })
    })?;
    Ok(map.len())
}
