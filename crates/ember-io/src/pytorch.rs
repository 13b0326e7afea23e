//! PyTorch checkpoints (`.pth`, `.pt`, `.bin`) in both layouts, read without Python.
//!
//! - zip (torch >= 1.6): `<dir>/data.pkl` holds the pickled object; tensor bytes live in
//!   `<dir>/data/<key>` entries.
//! - legacy: five pickles in a row (magic number, protocol version, system info, the object,
//!   the list of storage keys), then each storage as a little-endian `u64` element count and
//!   its bytes, in key order.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use candle_core::{DType, Device, Tensor};

use crate::pickle::{unpickle, PickleError, StorageDtype, TensorRef, Value};
use crate::{Error, Result};

const LEGACY_MAGIC: u128 = 0x1950_a86a_20f9_469c_fc6c;

fn pickle_err(path: &Path, e: PickleError) -> Error {
    match e {
        PickleError::Refused { module, name } => Error::RefusedGlobal { path: path.to_path_buf(), module, name },
        PickleError::Malformed { offset, detail } => Error::Pickle { path: path.to_path_buf(), offset, detail },
    }
}

/// Reads the tensors of a PyTorch checkpoint (either layout), in the order the file lists them.
/// Nested `{"state_dict": ...}` / `{"model": ...}` dictionaries are unwrapped.
pub fn read_pytorch(path: &Path, bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let (object, storages) =
        if bytes.starts_with(b"PK\x03\x04") { read_zip(path, bytes)? } else { read_legacy(path, bytes)? };
    let named = tensors_of(path, state_dict_of(&object))?;
    if named.is_empty() {
        return Err(Error::UnknownFormat {
            path: path.to_path_buf(),
            detail: "the pickled object holds no tensors".into(),
        });
    }
    let storage_bytes: usize = storages.values().map(Vec::len).sum();
    let mut budget = MaterialiseBudget::new(storage_bytes);
    named
        .into_iter()
        .map(|(name, t)| Ok((name.clone(), materialise(path, &name, &t, &storages, &mut budget)?)))
        .collect()
}

/// Raw bytes of each storage, by key.
type Storages = HashMap<String, Vec<u8>>;

fn read_zip(path: &Path, bytes: &[u8]) -> Result<(Value, Storages)> {
    let unknown = |detail: String| Error::UnknownFormat { path: path.to_path_buf(), detail };
    let mut zip =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| unknown(format!("bad zip archive: {e}")))?;
    let pkl_name = zip
        .file_names()
        .find(|n| n.ends_with("data.pkl"))
        .map(str::to_string)
        .ok_or_else(|| unknown("zip archive without data.pkl".into()))?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    // Entries are read as stored (the `zip` crate is built without decompressors), so an entry
    // can hold no more bytes than the file itself: no zip bomb.
    let read_entry = |zip: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>, name: &str| -> Result<Vec<u8>> {
        let mut entry = zip.by_name(name).map_err(|e| unknown(format!("entry {name}: {e}")))?;
        let mut out = Vec::new();
        entry.read_to_end(&mut out).map_err(|source| Error::Io(crate::IoError { path: path.to_path_buf(), source }))?;
        Ok(out)
    };
    let pkl = read_entry(&mut zip, &pkl_name)?;
    let (object, _) = unpickle(&pkl).map_err(|e| pickle_err(path, e))?;
    let mut storages = HashMap::new();
    let data_prefix = format!("{prefix}data/");
    let names: Vec<String> = zip.file_names().filter(|n| n.starts_with(&data_prefix)).map(str::to_string).collect();
    for name in names {
        let key = name.trim_start_matches(&data_prefix).to_string();
        storages.insert(key, read_entry(&mut zip, &name)?);
    }
    Ok((object, storages))
}

fn read_legacy(path: &Path, bytes: &[u8]) -> Result<(Value, Storages)> {
    let mut pos = 0;
    let mut next = |what: &str| -> Result<Value> {
        let (v, used) = unpickle(&bytes[pos..]).map_err(|e| match e {
            PickleError::Malformed { offset, detail } => {
                Error::Pickle { path: path.to_path_buf(), offset: pos + offset, detail: format!("{what}: {detail}") }
            }
            other => pickle_err(path, other),
        })?;
        pos += used;
        Ok(v)
    };
    let magic = next("magic number")?;
    let is_magic = match &magic {
        Value::BigInt(b) => {
            let mut v = 0u128;
            for (i, byte) in b.iter().enumerate().take(16) {
                v |= (*byte as u128) << (8 * i);
            }
            v == LEGACY_MAGIC
        }
        _ => false,
    };
    if !is_magic {
        return Err(Error::UnknownFormat {
            path: path.to_path_buf(),
            detail: "neither a zip archive nor a legacy PyTorch file (magic number)".into(),
        });
    }
    let _protocol = next("protocol version")?;
    let _sys_info = next("system info")?;
    let object = next("checkpoint object")?;
    let Value::List(keys) = next("storage keys")? else {
        return Err(Error::Pickle {
            path: path.to_path_buf(),
            offset: pos,
            detail: "storage keys are not a list".into(),
        });
    };
    // Storage element sizes come from the object's storage references.
    let mut sizes: HashMap<String, usize> = HashMap::new();
    let refs = tensors_of(path, &object)?;
    for (_, t) in &refs {
        sizes.insert(t.storage.key.clone(), t.storage.dtype.size());
    }
    let mut storages = HashMap::new();
    for key in keys.iter() {
        let Value::Str(key) = key else {
            return Err(Error::Pickle {
                path: path.to_path_buf(),
                offset: pos,
                detail: "storage key is not a string".into(),
            });
        };
        let short = |what: &str| Error::BadTensor {
            path: PathBuf::from(path),
            tensor: format!("<storage {key}>"),
            detail: format!("file ends inside its {what}"),
        };
        let count = bytes.get(pos..pos.saturating_add(8)).ok_or_else(|| short("element count"))?;
        let numel = u64::from_le_bytes(count.try_into().map_err(|_| short("element count"))?);
        pos += 8;
        let elem = sizes.get(&**key).copied().unwrap_or(1);
        // Checked: the count is untrusted, and the end must lie inside the file.
        let end = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(elem))
            .and_then(|len| pos.checked_add(len))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| short("data"))?;
        storages.insert(key.to_string(), bytes[pos..end].to_vec());
        pos = end;
    }
    Ok((object, storages))
}

/// The dictionary holding the tensors: the object itself, or its `state_dict` / `model` entry.
/// (Recursion is bounded: a pickle nests at most [`crate::pickle::MAX_DEPTH`] levels.)
fn state_dict_of(object: &Value) -> &Value {
    if let Value::Dict(items) = object {
        let holds_tensors = items.iter().any(|(_, v)| matches!(v, Value::Tensor(_)));
        if !holds_tensors {
            for key in ["state_dict", "model_state_dict", "model", "module", "net"] {
                if let Some((_, v)) =
                    items.iter().find(|(k, v)| matches!(k, Value::Str(s) if &**s == key) && matches!(v, Value::Dict(_)))
                {
                    return state_dict_of(v);
                }
            }
        }
    }
    object
}

/// How many dict entries [`collect_tensors`] looks at before it gives up. Memoised values are
/// shared, so a small hostile pickle can be a graph whose unfolding is exponentially large; a
/// real state dict has one entry per tensor and a few per nested dict.
const MAX_VISITS: usize = 4_000_000;

/// The tensors under `v` with their dotted names, in file order. Fails with the visit budget
/// spent (see [`MAX_VISITS`]).
fn collect_tensors(
    v: &Value,
    prefix: &str,
    out: &mut Vec<(String, Rc<TensorRef>)>,
    visits: &mut usize,
) -> std::result::Result<(), String> {
    match v {
        Value::Tensor(t) => out.push((prefix.to_string(), t.clone())),
        Value::Dict(items) => {
            for (k, v) in items.iter() {
                *visits += 1;
                if *visits > MAX_VISITS {
                    return Err(format!(
                        "the pickled object unfolds into more than {MAX_VISITS} dictionary entries (shared references \
                         repeated over and over); refusing to walk it"
                    ));
                }
                let key = match k {
                    Value::Str(s) => s.to_string(),
                    Value::Int(i) => i.to_string(),
                    _ => continue,
                };
                let name = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
                collect_tensors(v, &name, out, visits)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// [`collect_tensors`] from the top, errors naming `path`.
fn tensors_of(path: &Path, object: &Value) -> Result<Vec<(String, Rc<TensorRef>)>> {
    let mut out = Vec::new();
    collect_tensors(object, "", &mut out, &mut 0)
        .map_err(|detail| Error::UnknownFormat { path: path.to_path_buf(), detail })?;
    Ok(out)
}

fn candle_dtype(d: StorageDtype) -> DType {
    match d {
        StorageDtype::F32 => DType::F32,
        StorageDtype::F64 => DType::F64,
        StorageDtype::F16 => DType::F16,
        StorageDtype::BF16 => DType::BF16,
        StorageDtype::I64 => DType::I64,
        StorageDtype::I32 => DType::I32,
        StorageDtype::I16 => DType::I16,
        StorageDtype::U8 | StorageDtype::Bool => DType::U8,
    }
}

/// How many bytes views may materialise beyond what their storages hold. A view normally reads
/// each storage element at most once, so its bytes are bounded by its storage's; overlapping
/// views (stride 0, from `expand`) can repeat elements, and a hostile file could expand a
/// 4-byte storage to terabytes. Views may exceed the file's storage bytes by this much in total.
const MAX_EXPANSION_BYTES: usize = 256 << 20;

/// The bytes all views of one file may still materialise: the file's storage bytes (each view
/// may read its storage once; shared storages such as tied weights are counted per view, hence
/// the factor) plus [`MAX_EXPANSION_BYTES`].
struct MaterialiseBudget {
    left: usize,
}

impl MaterialiseBudget {
    fn new(storage_bytes: usize) -> Self {
        Self { left: storage_bytes.saturating_mul(4).saturating_add(MAX_EXPANSION_BYTES) }
    }
}

/// Copies a (possibly strided, offset) view out of its storage into a contiguous tensor. Every
/// size comes from the file, so all arithmetic is checked and the bytes materialised are bounded
/// ([`MaterialiseBudget`]).
fn materialise(
    path: &Path,
    name: &str,
    t: &TensorRef,
    storages: &Storages,
    budget: &mut MaterialiseBudget,
) -> Result<Tensor> {
    let bad = |detail: String| Error::BadTensor { path: path.to_path_buf(), tensor: name.to_string(), detail };
    let data = storages
        .get(&t.storage.key)
        .ok_or_else(|| bad(format!("storage `{}` is missing from the file", t.storage.key)))?;
    let elem = t.storage.dtype.size();
    let available = data.len() / elem;
    let numel = t
        .shape
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| bad(format!("shape {:?} has more elements than fit in memory", t.shape)))?;
    let bytes_needed =
        numel.checked_mul(elem).ok_or_else(|| bad(format!("shape {:?} has more bytes than fit in memory", t.shape)))?;
    if numel > 0 {
        let last = t
            .shape
            .iter()
            .zip(&t.stride)
            .try_fold(t.offset, |acc, (&n, &s)| (n - 1).checked_mul(s).and_then(|d| acc.checked_add(d)));
        match last {
            Some(last) if last < available => {}
            _ => {
                return Err(bad(format!(
                    "view (offset {}, shape {:?}, stride {:?}) reaches past its storage of {available} elements",
                    t.offset, t.shape, t.stride
                )))
            }
        }
    }
    if bytes_needed > budget.left {
        return Err(bad(format!(
            "view of shape {:?} (stride {:?}) would materialise {bytes_needed} bytes from a storage of {} bytes; \
             the file's views may not expand their storages by more than {MAX_EXPANSION_BYTES} bytes in total",
            t.shape,
            t.stride,
            data.len()
        )));
    }
    budget.left -= bytes_needed;
    let contiguous = {
        let mut expected = 1usize;
        t.shape.iter().zip(&t.stride).rev().all(|(&n, &s)| {
            let ok = n == 1 || s == expected;
            expected = expected.saturating_mul(n);
            ok
        })
    };
    // In range: the last element's index is below `available` (checked above) and, for a
    // contiguous view, equals offset + numel - 1.
    let bytes: Vec<u8> = if contiguous || numel == 0 {
        let start = t.offset.min(available) * elem;
        data[start..start + bytes_needed].to_vec()
    } else {
        let mut out = Vec::with_capacity(bytes_needed);
        let mut index = vec![0usize; t.shape.len()];
        for _ in 0..numel {
            let at = t.offset + index.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
            out.extend_from_slice(&data[at * elem..(at + 1) * elem]);
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < t.shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        out
    };
    Ok(Tensor::from_raw_buffer(&bytes, candle_dtype(t.storage.dtype), &t.shape, &Device::Cpu)?)
}
