//! Atomic file replacement: the one writer every checkpoint, state and run file goes through.
//!
//! A file under its final name is always complete: the data goes to a temporary file beside it
//! (`.{name}.{pid}.tmp`, same directory so the rename cannot cross file systems), which is
//! synced, renamed over the target, and then the directory is synced so the rename itself
//! survives a power cut.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::Error;

/// Runs `write` on a temporary path beside `path` (`.{name}.{pid}.tmp`), fsyncs that file,
/// renames it to `path` and fsyncs the directory (on unix), so the new file survives a crash once
/// this returns. If `write` or any later step fails, the temporary file is removed and the
/// previous file at `path` is intact.
///
/// `write` returns the caller's own error type; failures of the sync and rename become it through
/// `From<ember_io::Error>` ([`Error::Io`] naming the file).
pub fn write_atomically<E: From<Error>>(
    path: &Path,
    write: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io(crate::IoError { path: p, source })
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "checkpoint".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = write(&tmp).and_then(|()| {
        // The data must be on disk before the rename publishes it, or a crash could leave an
        // empty or partial file under the final name.
        File::open(&tmp).and_then(|f| f.sync_all()).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err(path))?;
        sync_dir(&dir);
        Ok(())
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Makes a rename in `dir` durable. Only unix can open and fsync a directory; elsewhere (and on
/// file systems that refuse it) the rename is as durable as the platform makes it.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
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
pub fn remove_stale_temporaries(dir: &Path) -> crate::Result<Vec<PathBuf>> {
    let io_err = |source| Error::Io(crate::IoError { path: dir.to_path_buf(), source });
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
        std::fs::remove_file(&path).map_err(|source| Error::Io(crate::IoError { path: path.clone(), source }))?;
        removed.push(path);
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_recognised() {
        assert!(is_temporary_name(".last.safetensors.123.tmp"));
        assert!(!is_temporary_name("last.safetensors"));
        assert!(!is_temporary_name(".last.safetensors.12a.tmp"));
        assert!(!is_temporary_name("..7.tmp"));
    }

    fn io(tmp: &Path, e: std::io::Error) -> Error {
        Error::Io(crate::IoError { path: tmp.to_path_buf(), source: e })
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomically(&path, |tmp| std::fs::write(tmp, "old").map_err(|e| io(tmp, e))).unwrap();
        let err = write_atomically(&path, |tmp| {
            std::fs::write(tmp, "half").map_err(|e| io(tmp, e))?;
            Err(io(tmp, std::io::Error::other("disk full")))
        })
        .unwrap_err();
        assert!(matches!(err, Error::Io(_)), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "temporary file left behind");
        write_atomically(&path, |tmp| std::fs::write(tmp, "new").map_err(|e| io(tmp, e))).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent/out.safetensors");
        let err = write_atomically(&path, |tmp| std::fs::write(tmp, "x").map_err(|e| io(tmp, e))).unwrap_err();
        assert!(err.to_string().contains(".out.safetensors."), "{err}");
    }

    #[test]
    fn stale_temporaries_of_other_processes_are_removed_and_ours_kept() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(".last.safetensors.1.tmp");
        let ours = dir.path().join(format!(".best.safetensors.{}.tmp", std::process::id()));
        for p in [&stale, &ours, &dir.path().join("last.safetensors")] {
            std::fs::write(p, b"").unwrap();
        }
        assert_eq!(remove_stale_temporaries(dir.path()).unwrap(), vec![stale.clone()]);
        assert!(!stale.exists() && ours.exists());
    }
}
