//! safetensors files: written atomically with optional string metadata, read whole or header
//! only.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::{write_atomically, Error, Result};

/// The largest header [`read_metadata`] accepts: real headers are kilobytes, and the length is
/// untrusted.
const MAX_HEADER_BYTES: u64 = 100 << 20;

/// Writes `tensors` to `path` as safetensors with string `metadata` in the header (none when it
/// is empty), atomically ([`write_atomically`]): a crash or error at any point leaves the
/// previous file at `path` intact. Values are written as they are; whoever must refuse NaN or
/// infinities (ember-train's checkpoints) checks before calling this.
pub fn write_safetensors(tensors: &[(String, Tensor)], metadata: HashMap<String, String>, path: &Path) -> Result<()> {
    // safetensors stores each tensor's bytes in row-major order, which only a contiguous
    // tensor's storage holds.
    let contiguous: Vec<(String, Tensor)> =
        tensors.iter().map(|(k, t)| Ok((k.clone(), t.contiguous()?))).collect::<Result<_>>()?;
    let metadata = (!metadata.is_empty()).then_some(metadata);
    write_atomically(path, |tmp| {
        safetensors::serialize_to_file(contiguous.iter().map(|(k, t)| (k.as_str(), t)), metadata, tmp)
            .map_err(|e| Error::WriteCheckpoint { path: path.to_path_buf(), reason: e.to_string() })
    })
}

/// The string metadata in a safetensors file's header (empty when it has none), reading only
/// the header: its declared length is checked against the file before anything is allocated.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    let unreadable = |reason: String| Error::UnreadableCheckpoint { path: path.to_path_buf(), reason };
    let mut file =
        std::fs::File::open(path).map_err(|source| Error::Io(crate::IoError { path: path.to_path_buf(), source }))?;
    let size = file.metadata().map_err(|source| Error::Io(crate::IoError { path: path.to_path_buf(), source }))?.len();
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix).map_err(|_| unreadable("shorter than a safetensors header".into()))?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > size.saturating_sub(8) || header_len > MAX_HEADER_BYTES {
        return Err(unreadable(format!("header of {header_len} bytes does not fit in a {size}-byte file")));
    }
    let mut header = vec![0u8; header_len as usize]; // bounded by the file's size and 100 MiB
    file.read_exact(&mut header).map_err(|e| unreadable(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| unreadable(format!("header is not JSON: {e}")))?;
    let mut out = HashMap::new();
    if let Some(meta) = value.get("__metadata__").and_then(|m| m.as_object()) {
        for (k, v) in meta {
            if let Some(v) = v.as_str() {
                out.insert(k.clone(), v.to_string());
            }
        }
    }
    Ok(out)
}

/// Reads every tensor of a safetensors file onto `device`. A directory, a missing file and a
/// PyTorch checkpoint (which `ember convert` turns into safetensors) each get their own error.
pub fn read_safetensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let unreadable = |reason: String| Error::UnreadableCheckpoint { path: path.to_path_buf(), reason };
    let meta =
        std::fs::metadata(path).map_err(|source| Error::Io(crate::IoError { path: path.to_path_buf(), source }))?;
    if meta.is_dir() {
        return Err(unreadable("is a directory, not a checkpoint file".into()));
    }
    let bytes = std::fs::read(path).map_err(|source| Error::Io(crate::IoError { path: path.to_path_buf(), source }))?;
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(&[0x80, 0x02, 0x8a, 0x0a]) {
        return Err(unreadable(
            "this is a PyTorch checkpoint, not safetensors; convert it with `ember convert IN OUT.safetensors`".into(),
        ));
    }
    candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| unreadable(e.to_string()))
}
