//! Downloading a file with a SHA-256 check, atomically and with retries.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Progress of a download: `(bytes so far, total bytes if the server said)`.
pub type Progress<'a> = &'a mut dyn FnMut(u64, Option<u64>);

/// How many times a failed transfer is retried from scratch.
pub const ATTEMPTS: usize = 3;

/// Downloads `url` to `dest`: the bytes go to a temporary file beside `dest`, are checked
/// against `sha256` (lower-case hex), and only then renamed to `dest`. A failed transfer is
/// retried from scratch up to [`ATTEMPTS`] times; a checksum mismatch is not retried, and no
/// partial or wrong file is ever left at `dest`. Returns the number of attempts used.
pub fn download(url: &str, dest: &Path, sha256: &str, progress: Progress) -> Result<usize> {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "download".into());
    let tmp = dest.with_file_name(format!(".{name}.{}.part", std::process::id()));
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|source| Error::Io(ember_io::IoError { path: dir.to_path_buf(), source }))?;
    }
    let mut last_error = None;
    for attempt in 1..=ATTEMPTS {
        match fetch(url, &tmp, progress) {
            Ok(found) => {
                if found != sha256.to_ascii_lowercase() {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(Error::ChecksumMismatch { url: url.to_string(), expected: sha256.to_string(), found });
                }
                std::fs::rename(&tmp, dest)
                    .map_err(|source| Error::Io(ember_io::IoError { path: dest.to_path_buf(), source }))?;
                return Ok(attempt);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                let retry = matches!(&e, Error::Download { .. });
                last_error = Some(e);
                if !retry {
                    break;
                }
            }
        }
    }
    Err(last_error.unwrap_or_else(|| Error::Download { url: url.into(), reason: "no attempt made".into() }))
}

/// One attempt: streams `url` into `tmp`, returning the SHA-256 of what arrived.
fn fetch(url: &str, tmp: &PathBuf, progress: Progress) -> Result<String> {
    let fail = |reason: String| Error::Download { url: url.to_string(), reason };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(std::time::Duration::from_secs(20)))
        .timeout_recv_body(Some(std::time::Duration::from_secs(60)))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("server answered HTTP {status}")));
    }
    let total =
        response.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let mut reader = response.body_mut().as_reader();
    let mut file =
        std::fs::File::create(tmp).map_err(|source| Error::Io(ember_io::IoError { path: tmp.clone(), source }))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail(format!("transfer interrupted after {done} bytes: {e}"))),
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(|source| Error::Io(ember_io::IoError { path: tmp.clone(), source }))?;
        done += n as u64;
        progress(done, total);
    }
    if let Some(total) = total {
        if done != total {
            return Err(fail(format!("transfer interrupted: {done} of {total} bytes")));
        }
    }
    file.sync_all().map_err(|source| Error::Io(ember_io::IoError { path: tmp.clone(), source }))?;
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// SHA-256 of a file on disk, lower-case hex.
pub fn sha256_of(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path)
        .map_err(|source| Error::Io(ember_io::IoError { path: path.to_path_buf(), source }))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .map_err(|source| Error::Io(ember_io::IoError { path: path.to_path_buf(), source }))?;
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
