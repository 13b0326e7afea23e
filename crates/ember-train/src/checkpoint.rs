//! Model checkpoints: safetensors files written atomically and loaded strictly.
//!
//! Writers refuse tensors holding NaN or infinities ([`Error::NonFiniteTensor`]), so a diverged
//! model never reaches a file under a checkpoint's name; loaders refuse them too, and refuse to
//! convert integer tensors into float parameters.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use ember_layers::ParamStore;

use crate::{Error, Result};

/// Fails naming the first tensor of `tensors` that holds a NaN or an infinity.
fn ensure_finite(tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    for (name, t) in tensors {
        if !ember_kernels::all_finite(t)? {
            return Err(Error::NonFiniteTensor { path: path.to_path_buf(), name: name.clone() });
        }
    }
    Ok(())
}

/// Writes `tensors` to `path` as safetensors, atomically: the data goes to a temporary file in
/// the same directory, is flushed to disk, then renamed over `path`. A crash or error at any
/// point leaves the previous file at `path` intact. Tensors holding NaN or infinities are
/// refused before anything is written.
pub fn save_tensors(tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    save_tensors_with_metadata(tensors, HashMap::new(), path)
}

/// Like [`save_tensors`], with string metadata in the safetensors header.
pub fn save_tensors_with_metadata(
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
    path: &Path,
) -> Result<()> {
    ensure_finite(tensors, path)?;
    let contiguous: Vec<(String, Tensor)> =
        tensors.iter().map(|(k, t)| Ok((k.clone(), t.contiguous()?))).collect::<candle_core::Result<_>>()?;
    let metadata = (!metadata.is_empty()).then_some(metadata);
    write_atomically(path, |tmp| {
        safetensors::serialize_to_file(contiguous.iter().map(|(k, t)| (k.as_str(), t)), metadata, tmp)
            .map_err(|e| Error::WriteCheckpoint { path: path.to_path_buf(), reason: e.to_string() })
    })
}

/// Saves the whole state of `store` — parameters and buffers such as batch-norm running
/// statistics, PyTorch's `state_dict` — to `path` (see [`save_tensors`]).
pub fn save(store: &ParamStore, path: &Path) -> Result<()> {
    save_tensors(&store.state(), path)
}

/// Saves the whole state of `store` like [`save`], with string `metadata` in the header (a
/// model card: which model, input, classes and preprocessing).
pub fn save_with_metadata(store: &ParamStore, metadata: HashMap<String, String>, path: &Path) -> Result<()> {
    save_tensors_with_metadata(&store.state(), metadata, path)
}

/// The string metadata in a safetensors file's header (empty when it has none), reading only
/// the header: its declared length is checked against the file before anything is allocated.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    use std::io::Read;
    let unreadable = |reason: String| Error::UnreadableCheckpoint { path: path.to_path_buf(), reason };
    let mut file = std::fs::File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let size = file.metadata().map_err(|source| Error::Io { path: path.to_path_buf(), source })?.len();
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix).map_err(|_| unreadable("shorter than a safetensors header".into()))?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > size.saturating_sub(8) || header_len > 100 << 20 {
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

/// Runs `write` on a temporary path beside `path` (`.{name}.{pid}.tmp`), syncs it, renames it to
/// `path` and syncs the directory, so the new file survives a crash once this returns.
pub fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io { path: p, source }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "checkpoint".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = write(&tmp).and_then(|()| {
        File::open(&tmp).and_then(|f| f.sync_all()).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err(path))?;
        // Make the rename itself durable; not every platform can open a directory.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Whether `name` is a temporary file of [`write_atomically`]: `.{name}.{pid}.tmp`.
pub fn is_temporary_name(name: &str) -> bool {
    let Some(stem) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
        return false;
    };
    match stem.rsplit_once('.') {
        Some((file, pid)) => !file.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// Removes the temporary files [`write_atomically`] left in `dir` (not below it) when a process
/// was killed mid-write, and returns their paths. A temporary file is never trusted, even when
/// complete: it was not committed. Other processes' live temporaries are not expected in a run
/// directory (one run writes to it at a time); this process's own are kept.
pub fn remove_stale_temporaries(dir: &Path) -> Result<Vec<PathBuf>> {
    let io_err = |source| Error::Io { path: dir.to_path_buf(), source };
    let own = format!(".{}.tmp", std::process::id());
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_temporary_name(name) || name.ends_with(&own) || !entry.file_type().map_err(io_err)?.is_file() {
            continue;
        }
        let path = entry.path();
        std::fs::remove_file(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        removed.push(path);
    }
    removed.sort();
    Ok(removed)
}

/// Reads every tensor of a safetensors file onto `device`. A directory, a missing file and a
/// PyTorch checkpoint (which `ember convert` turns into safetensors) each get their own error.
pub fn read_tensors(path: &Path, device: &candle_core::Device) -> Result<HashMap<String, Tensor>> {
    let unreadable = |reason: String| Error::UnreadableCheckpoint { path: path.to_path_buf(), reason };
    let meta = std::fs::metadata(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    if meta.is_dir() {
        return Err(unreadable("is a directory, not a checkpoint file".into()));
    }
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(&[0x80, 0x02, 0x8a, 0x0a]) {
        return Err(unreadable(
            "this is a PyTorch checkpoint, not safetensors; convert it with `ember convert IN OUT.safetensors`".into(),
        ));
    }
    candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| unreadable(e.to_string()))
}

/// Loads `path` into `store`, strictly: every parameter and buffer must be present with its exact
/// shape and the file may hold nothing else (PyTorch's `num_batches_tracked` counters, which ember
/// does not keep, are ignored). Nothing is assigned unless everything fits.
pub fn load(store: &ParamStore, path: &Path) -> Result<()> {
    let tensors = read_tensors(path, store.device())?;
    load_map(store, tensors.into_iter().collect(), path)
}

/// [`load`] from tensors already read (`path` names their source in errors).
pub fn load_map(store: &ParamStore, tensors: std::collections::BTreeMap<String, Tensor>, path: &Path) -> Result<()> {
    let mut tensors = tensors;
    tensors.retain(|name, _| !name.ends_with("num_batches_tracked"));
    let mut assignments = Vec::new();
    for (name, var) in store.state() {
        let t = tensors
            .remove(&name)
            .ok_or_else(|| Error::MissingTensor { path: path.to_path_buf(), name: name.clone() })?;
        if t.dims() != var.dims() {
            return Err(Error::ShapeMismatch {
                path: path.to_path_buf(),
                name,
                expected: var.dims().to_vec(),
                found: t.dims().to_vec(),
            });
        }
        assignments.push((name, t));
    }
    if let Some(name) = tensors.keys().next() {
        return Err(Error::UnexpectedTensor { path: path.to_path_buf(), name: name.clone() });
    }
    for (name, t) in &assignments {
        check_value(path, name, t, store)?;
    }
    for (name, t) in assignments {
        store.assign(&name, &t)?;
    }
    Ok(())
}

/// Fails unless `value` may become the model tensor `name`: float parameters take float values
/// only (an integer tensor is a different kind of data, not a weight), and only finite ones.
fn check_value(path: &Path, name: &str, value: &Tensor, store: &ParamStore) -> Result<()> {
    let target = store.get(name).or_else(|| store.buffer(name)).map(|v| v.dtype());
    if let Some(target) = target {
        if target.is_float() && !value.dtype().is_float() {
            return Err(Error::WrongDtype {
                path: path.to_path_buf(),
                name: name.to_string(),
                found: value.dtype(),
                expected: target,
            });
        }
    }
    if !ember_kernels::all_finite(value)? {
        return Err(Error::NonFiniteTensor { path: path.to_path_buf(), name: name.to_string() });
    }
    Ok(())
}
