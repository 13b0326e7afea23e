//! Model checkpoints: safetensors files written atomically and loaded strictly. The file I/O
//! itself is `ember-io`'s; this module adds the model's rules (finite values; exact names,
//! shapes and dtypes).
//!
//! Writers refuse tensors holding NaN or infinities ([`Error::NonFiniteTensor`]), so a diverged
//! model never reaches a file under a checkpoint's name; loaders refuse them too, and refuse to
//! convert integer tensors into float parameters.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use ember_layers::ParamStore;

use crate::{Error, Result};

/// The one atomic writer (temporary file, fsync, rename, fsync of the directory) and its
/// temporary-file helpers live in `ember-io`, shared with ember-optim and ember-finetune.
pub use ember_io::{is_temporary_name, write_atomically};

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
    Ok(ember_io::write_safetensors(tensors, metadata, path)?)
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
/// the header: its declared length is checked against the file before anything is allocated
/// ([`ember_io::read_metadata`]).
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    Ok(ember_io::read_metadata(path)?)
}

/// Reads every tensor of a safetensors file onto `device`. A directory, a missing file and a
/// PyTorch checkpoint (which `ember convert` turns into safetensors) each get their own error
/// ([`ember_io::read_safetensors`]).
pub fn read_tensors(path: &Path, device: &candle_core::Device) -> Result<HashMap<String, Tensor>> {
    Ok(ember_io::read_safetensors(path, device)?)
}

/// Removes the temporary files [`write_atomically`] left in `dir` (not below it) when a process
/// was killed mid-write, and returns their paths ([`ember_io::remove_stale_temporaries`]).
pub fn remove_stale_temporaries(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    Ok(ember_io::remove_stale_temporaries(dir)?)
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
