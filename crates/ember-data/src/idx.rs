//! The IDX file format (MNIST family), raw or gzip-compressed.
//!
//! An IDX file is a 4-byte magic number `0x0000_08RR` (`08` = unsigned bytes, `RR` = rank),
//! `RR` big-endian u32 dimensions, then the data. The header is checked against the file before
//! any buffer of the size it claims is allocated.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::GzDecoder;

use crate::{Error, Result};

/// The contents of an IDX file of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first (`[count, rows, cols]` for images).
    pub dims: Vec<usize>,
    /// Row-major data, `dims.iter().product()` bytes.
    pub data: Vec<u8>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The most data bytes an IDX header may promise (1 GiB; EMNIST ByClass, the largest of the
/// family, holds 547 MB). A gzip stream is inflated only as far as the header promises, and
/// never past this.
pub const MAX_IDX_BYTES: u64 = 1 << 30;

/// Reads an IDX file of unsigned bytes with `rank` dimensions. `what` ("images", "labels")
/// appears in error messages. Gzip compression is detected from the content, not the name.
pub fn read_idx(path: &Path, rank: usize, what: &'static str) -> Result<IdxArray> {
    let io_err = |source| Error::Io(ember_io::IoError { path: path.to_path_buf(), source });
    let file = File::open(path).map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();
    let mut reader = BufReader::new(file);
    let is_gzip = reader.fill_buf().map_err(io_err)?.starts_with(&GZIP_MAGIC);
    if is_gzip {
        parse(GzDecoder::new(reader), path, rank, what, None)
    } else {
        parse(reader, path, rank, what, Some(file_len))
    }
}

/// Parses IDX data held in memory (raw or gzip, detected from the content) as [`read_idx`]
/// does a file; `path` names it in errors.
pub fn parse_idx(bytes: &[u8], path: &Path, rank: usize, what: &'static str) -> Result<IdxArray> {
    if bytes.starts_with(&GZIP_MAGIC) {
        parse(GzDecoder::new(bytes), path, rank, what, None)
    } else {
        parse(bytes, path, rank, what, Some(bytes.len() as u64))
    }
}

/// Parses an IDX stream; `stream_len` is the total length when known (raw files).
fn parse<R: Read>(
    mut reader: R,
    path: &Path,
    rank: usize,
    what: &'static str,
    stream_len: Option<u64>,
) -> Result<IdxArray> {
    let path_buf = || PathBuf::from(path);
    let io_err = |source| Error::Io(ember_io::IoError { path: path_buf(), source });
    let header_len = 4 + 4 * rank;
    let mut header = vec![0u8; header_len];
    let got = read_fully(&mut reader, &mut header).map_err(io_err)?;
    if got >= 4 {
        let found = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let expected = 0x0800 | rank as u32;
        if found != expected {
            return Err(Error::BadMagic { path: path_buf(), what, found, expected });
        }
    }
    if got < header_len {
        return Err(Error::TruncatedHeader { path: path_buf(), header_len });
    }
    let dims: Vec<u64> =
        header[4..].chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64).collect();
    let bad_dims = || Error::BadDimensions { path: path_buf(), dims: dims.clone() };
    if dims.iter().skip(1).any(|&d| d == 0) {
        return Err(bad_dims());
    }
    let expected = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).ok_or_else(bad_dims)?;
    if expected > MAX_IDX_BYTES {
        return Err(Error::TooLarge { path: path_buf(), expected, limit: MAX_IDX_BYTES });
    }
    let expected_usize = usize::try_from(expected).map_err(|_| bad_dims())?;

    let data = match stream_len {
        Some(len) => {
            let found = len.saturating_sub(header_len as u64);
            if found < expected {
                return Err(Error::Truncated { path: path_buf(), expected, found });
            }
            if found > expected {
                return Err(Error::TrailingBytes { path: path_buf(), expected, extra: found - expected });
            }
            let mut data = vec![0u8; expected_usize];
            reader.read_exact(&mut data).map_err(io_err)?;
            data
        }
        None => {
            // Unknown length (compressed): grow with the data actually present, never to the
            // size the header claims up front, and never past one byte more than it claims.
            let data = read_at_most(&mut reader, expected_usize + 1).map_err(io_err)?;
            let found = data.len() as u64;
            if found < expected {
                return Err(Error::Truncated { path: path_buf(), expected, found });
            }
            if found > expected {
                // Count what follows, up to a bound: a small gzip bomb must not keep us inflating.
                let rest =
                    std::io::copy(&mut (&mut reader).take(MAX_IDX_BYTES), &mut std::io::sink()).map_err(io_err)?;
                return Err(Error::TrailingBytes { path: path_buf(), expected, extra: rest + 1 });
            }
            data
        }
    };
    Ok(IdxArray { dims: dims.iter().map(|&d| d as usize).collect(), data })
}

/// Reads up to `limit` bytes, doubling the buffer as data arrives but never reserving more than
/// `limit` bytes in all (`read_to_end` may reserve up to twice what it reads).
fn read_at_most<R: Read>(reader: &mut R, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while data.len() < limit {
        let want = chunk.len().min(limit - data.len());
        let n = match reader.read(&mut chunk[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if data.capacity() - data.len() < n {
            let target = (data.len() * 2).max(data.len() + n).min(limit);
            data.reserve_exact(target - data.len());
        }
        data.extend_from_slice(&chunk[..n]);
    }
    Ok(data)
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_fully<R: Read>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
