//! TensorBoard event files, written natively (no TensorFlow, no protobuf dependency).
//!
//! An event file is a sequence of TFRecords — `u64 length`, masked CRC-32C of the length, the
//! payload, masked CRC-32C of the payload — whose payloads are `tensorflow.Event` protobuf
//! messages. The first event carries `file_version = "brain.Event:2"`; the rest carry a
//! `Summary` with scalar (`simple_value`) or PNG image values.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// Appends scalars and images to one event file in a log directory.
pub struct TensorBoardWriter {
    path: PathBuf,
    out: BufWriter<File>,
    /// Bytes in the file once buffered events are flushed.
    len: u64,
}

impl std::fmt::Debug for TensorBoardWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorBoardWriter").field("path", &self.path).finish()
    }
}

impl TensorBoardWriter {
    /// Creates `logdir` if needed and a new `events.out.tfevents.<time>.ember.<pid>` file in it.
    pub fn create(logdir: &Path) -> Result<Self> {
        std::fs::create_dir_all(logdir)
            .map_err(|source| Error::Io(ember_io::IoError { path: logdir.to_path_buf(), source }))?;
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let path = logdir.join(format!("events.out.tfevents.{secs}.ember.{}", std::process::id()));
        let file = File::create(&path).map_err(|source| Error::Io(ember_io::IoError { path: path.clone(), source }))?;
        let mut w = Self { path, out: BufWriter::new(file), len: 0 };
        let mut event = Vec::new();
        put_double(&mut event, 1, now());
        put_bytes(&mut event, 3, b"brain.Event:2");
        w.record(&event)?;
        w.flush()?;
        Ok(w)
    }

    /// Reopens an event file this writer wrote earlier, cut back to its first `len` bytes (for a
    /// resumed run: the events of the epochs its resume file committed), to append to it. Fails
    /// when the file is shorter than `len`.
    pub fn reopen(path: &Path, len: u64) -> Result<Self> {
        let io_err = |source| Error::Io(ember_io::IoError { path: path.to_path_buf(), source });
        let mut file = std::fs::OpenOptions::new().write(true).open(path).map_err(io_err)?;
        let found = file.metadata().map_err(io_err)?.len();
        if found < len {
            let reason = format!("{found} bytes, but {len} were committed");
            return Err(Error::Corrupt { path: path.to_path_buf(), detail: reason });
        }
        file.set_len(len).map_err(io_err)?;
        file.seek(SeekFrom::Start(len)).map_err(io_err)?;
        Ok(Self { path: path.to_path_buf(), out: BufWriter::new(file), len })
    }

    /// Bytes written so far (buffered events included).
    pub fn bytes_written(&self) -> u64 {
        self.len
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Logs `value` under `tag` at `step`.
    pub fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<()> {
        let mut v = Vec::new();
        put_bytes(&mut v, 1, tag.as_bytes());
        put_float(&mut v, 2, value as f32);
        self.summary(step, &v)
    }

    /// Logs a PNG image (`width x height`, `channels` 1, 3 or 4) under `tag` at `step`.
    pub fn image(&mut self, tag: &str, step: u64, png: &[u8], width: u32, height: u32, channels: u32) -> Result<()> {
        let mut img = Vec::new();
        put_varint_field(&mut img, 1, height as u64);
        put_varint_field(&mut img, 2, width as u64);
        put_varint_field(&mut img, 3, channels as u64);
        put_bytes(&mut img, 4, png);
        let mut v = Vec::new();
        put_bytes(&mut v, 1, tag.as_bytes());
        put_bytes(&mut v, 4, &img);
        self.summary(step, &v)
    }

    /// Writes buffered events to disk.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|source| Error::Io(ember_io::IoError { path: self.path.clone(), source }))
    }

    /// Flushes and asks the OS to put the events on stable storage (so a length recorded in a
    /// resume file after this is never longer than the file after a crash).
    pub fn sync(&mut self) -> Result<()> {
        self.flush()?;
        self.out
            .get_ref()
            .sync_data()
            .map_err(|source| Error::Io(ember_io::IoError { path: self.path.clone(), source }))
    }

    fn summary(&mut self, step: u64, value: &[u8]) -> Result<()> {
        let mut summary = Vec::new();
        put_bytes(&mut summary, 1, value);
        let mut event = Vec::new();
        put_double(&mut event, 1, now());
        put_varint_field(&mut event, 2, step);
        put_bytes(&mut event, 5, &summary);
        self.record(&event)
    }

    fn record(&mut self, payload: &[u8]) -> Result<()> {
        let len = (payload.len() as u64).to_le_bytes();
        let mut rec = Vec::with_capacity(payload.len() + 16);
        rec.extend_from_slice(&len);
        rec.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        rec.extend_from_slice(payload);
        rec.extend_from_slice(&masked_crc32c(payload).to_le_bytes());
        self.out.write_all(&rec).map_err(|source| Error::Io(ember_io::IoError { path: self.path.clone(), source }))?;
        self.len += rec.len() as u64;
        Ok(())
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    put_varint(out, (field as u64) << 3);
    put_varint(out, v);
}

fn put_double(out: &mut Vec<u8>, field: u32, v: f64) {
    put_varint(out, ((field as u64) << 3) | 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_float(out: &mut Vec<u8>, field: u32, v: f32) {
    put_varint(out, ((field as u64) << 3) | 5);
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, ((field as u64) << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// CRC-32C (Castagnoli), as TFRecord uses.
pub fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0x82F6_3B78 ^ (c >> 1) } else { c >> 1 };
            }
            *slot = c;
        }
        t
    });
    !data.iter().fold(!0u32, |crc, &b| table[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8))
}

/// TFRecord's masked CRC: `rotate_right(crc, 15) + 0xa282ead8`.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
    /// Global step.
    pub step: u64,
    /// `file_version`, set on the first event only.
    pub file_version: Option<String>,
    /// Scalar values `(tag, value)`.
    pub scalars: Vec<(String, f32)>,
    /// Images `(tag, width, height, png bytes)`.
    pub images: Vec<(String, u32, u32, Vec<u8>)>,
}

/// Reads an event file, checking both CRCs of every record; a bad record is an error naming the
/// file and the record's offset.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|source| Error::Io(ember_io::IoError { path: path.to_path_buf(), source }))?;
    let bad = |offset: usize, what: &str| Error::Corrupt {
        path: path.to_path_buf(),
        detail: format!("record at byte {offset}: {what}"),
    };
    let mut events = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let header = bytes.get(pos..pos + 12).ok_or_else(|| bad(pos, "truncated header"))?;
        let len_bytes = &header[..8];
        let crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if crc != masked_crc32c(len_bytes) {
            return Err(bad(pos, "length CRC mismatch"));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().map_err(|_| bad(pos, "length"))?);
        // The length is untrusted: it may point past the end of the file, or of memory.
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| (pos + 12).checked_add(len))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| bad(pos, &format!("truncated payload (length {len})")))?;
        let payload = &bytes[pos + 12..end];
        let crc_bytes = bytes.get(end..end + 4).ok_or_else(|| bad(pos, "truncated payload CRC"))?;
        if u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]) != masked_crc32c(payload) {
            return Err(bad(pos, "payload CRC mismatch"));
        }
        events.push(decode_event(payload).ok_or_else(|| bad(pos, "not an Event message"))?);
        pos = end + 4;
    }
    Ok(events)
}

/// A protobuf field: number and value.
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

fn fields(mut buf: &[u8]) -> Option<Vec<(u32, Field<'_>)>> {
    fn varint(buf: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = buf.split_first()?;
            *buf = rest;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let field = (key >> 3) as u32;
        let value = match key & 7 {
            0 => Field::Varint(varint(&mut buf)?),
            1 => {
                let (b, rest) = buf.split_at_checked(8)?;
                buf = rest;
                Field::Fixed64(u64::from_le_bytes(b.try_into().ok()?))
            }
            2 => {
                let n = varint(&mut buf)? as usize;
                let (b, rest) = buf.split_at_checked(n)?;
                buf = rest;
                Field::Bytes(b)
            }
            5 => {
                let (b, rest) = buf.split_at_checked(4)?;
                buf = rest;
                Field::Fixed32(u32::from_le_bytes(b.try_into().ok()?))
            }
            _ => return None,
        };
        out.push((field, value));
    }
    Some(out)
}

fn decode_event(payload: &[u8]) -> Option<Event> {
    let mut e = Event::default();
    for (n, f) in fields(payload)? {
        match (n, f) {
            (1, Field::Fixed64(v)) => e.wall_time = f64::from_bits(v),
            (2, Field::Varint(v)) => e.step = v,
            (3, Field::Bytes(b)) => e.file_version = Some(String::from_utf8_lossy(b).into_owned()),
            (5, Field::Bytes(summary)) => {
                for (n, f) in fields(summary)? {
                    let (1, Field::Bytes(value)) = (n, f) else { continue };
                    let (mut tag, mut scalar, mut image) = (String::new(), None, None);
                    for (n, f) in fields(value)? {
                        match (n, f) {
                            (1, Field::Bytes(b)) => tag = String::from_utf8_lossy(b).into_owned(),
                            (2, Field::Fixed32(v)) => scalar = Some(f32::from_bits(v)),
                            (4, Field::Bytes(img)) => {
                                let (mut w, mut h, mut png) = (0, 0, Vec::new());
                                for (n, f) in fields(img)? {
                                    match (n, f) {
                                        (1, Field::Varint(v)) => h = v as u32,
                                        (2, Field::Varint(v)) => w = v as u32,
                                        (4, Field::Bytes(b)) => png = b.to_vec(),
                                        _ => {}
                                    }
                                }
                                image = Some((w, h, png));
                            }
                            _ => {}
                        }
                    }
                    if let Some(v) = scalar {
                        e.scalars.push((tag.clone(), v));
                    }
                    if let Some((w, h, png)) = image {
                        e.images.push((tag, w, h, png));
                    }
                }
            }
            _ => {}
        }
    }
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The CRC-32C check value of "123456789" (RFC 3720).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
