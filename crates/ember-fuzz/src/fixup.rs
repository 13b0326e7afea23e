//! Checksum repair, so mutations get past the CRCs of framed formats and reach the parsers
//! behind them: TFRecord (masked CRC-32C), PNG chunks (CRC-32) and stored zip entries (CRC-32).
//! Each returns `None` when it changed nothing.

fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}

fn read_u32_le(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn read_u16_le(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(data.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn changed(original: &[u8], fixed: Vec<u8>) -> Option<Vec<u8>> {
    (fixed != original).then_some(fixed)
}

/// TFRecord framing: `len: u64 LE, masked_crc32c(len), payload, masked_crc32c(payload)`.
pub fn tfrecord(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = data.to_vec();
    let mut pos = 0usize;
    while pos + 12 <= out.len() {
        let crc = ember_train::tensorboard::masked_crc32c(&out[pos..pos + 8]);
        out[pos + 8..pos + 12].copy_from_slice(&crc.to_le_bytes());
        let len = u64::from_le_bytes(out[pos..pos + 8].try_into().ok()?);
        let Some(end) = usize::try_from(len).ok().and_then(|l| (pos + 12).checked_add(l)) else { break };
        if end + 4 > out.len() {
            break;
        }
        let crc = ember_train::tensorboard::masked_crc32c(&out[pos + 12..end]);
        out[end..end + 4].copy_from_slice(&crc.to_le_bytes());
        pos = end + 4;
    }
    changed(data, out)
}

/// PNG: every chunk's CRC over its type and data.
pub fn png(data: &[u8]) -> Option<Vec<u8>> {
    if !data.starts_with(b"\x89PNG\r\n\x1a\n") {
        return None;
    }
    let mut out = data.to_vec();
    let mut pos = 8usize;
    while pos + 12 <= out.len() {
        let len = u32::from_be_bytes(out[pos..pos + 4].try_into().ok()?) as usize;
        let Some(end) = (pos + 8).checked_add(len) else { break };
        if end + 4 > out.len() {
            break;
        }
        let crc = crc32(&out[pos + 4..end]);
        out[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        pos = end + 4;
    }
    changed(data, out)
}

/// Zip: the CRC-32 of every stored (uncompressed) entry, in the central directory and in its
/// local header or data descriptor.
pub fn zip(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = data.to_vec();
    let mut pos = 0usize;
    while let Some(found) = out.get(pos..)?.windows(4).position(|w| w == b"PK\x01\x02") {
        let central = pos + found;
        pos = central + 4;
        let (Some(method), Some(size), Some(local)) =
            (read_u16_le(&out, central + 10), read_u32_le(&out, central + 20), read_u32_le(&out, central + 42))
        else {
            break;
        };
        let local = local as usize;
        if method != 0 || out.get(local..local + 4) != Some(b"PK\x03\x04") {
            continue;
        }
        let (Some(name_len), Some(extra_len)) = (read_u16_le(&out, local + 26), read_u16_le(&out, local + 28)) else {
            continue;
        };
        let start = local + 30 + name_len as usize + extra_len as usize;
        let Some(body) = out.get(start..start.saturating_add(size as usize)) else { continue };
        let crc = crc32(body).to_le_bytes();
        let end = start + size as usize;
        out[central + 16..central + 20].copy_from_slice(&crc);
        if read_u16_le(&out, local + 6).is_some_and(|flags| flags & 0x08 != 0) {
            // The CRC follows the data, in a data descriptor (PyTorch writes these).
            let at = if out.get(end..end + 4) == Some(b"PK\x07\x08") { end + 4 } else { end };
            if let Some(slot) = out.get_mut(at..at + 4) {
                slot.copy_from_slice(&crc);
            }
        } else {
            out[local + 14..local + 18].copy_from_slice(&crc);
        }
    }
    changed(data, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixups_leave_valid_seeds_unchanged_and_repair_mutated_ones() {
        let corpus = crate::crate_dir().join("corpus");
        // (seed, repair, a byte inside checksummed data: for the zip, inside data.pkl)
        type Repair = fn(&[u8]) -> Option<Vec<u8>>;
        let cases: [(&str, Repair, usize); 3] = [
            ("tensorboard", tfrecord, 200),
            ("image/digit-grey.png", png, 200),
            ("pytorch-zip/zip_state_dict.pt", zip, 100),
        ];
        for (path, fix, at) in cases {
            let path = corpus.join(path);
            let file = if path.is_dir() {
                std::fs::read_dir(&path).unwrap().next().unwrap().unwrap().path()
            } else {
                path.clone()
            };
            let bytes = std::fs::read(&file).unwrap();
            assert!(fix(&bytes).is_none(), "{} is valid and must stay unchanged", file.display());
            let mut broken = bytes.clone();
            broken[at] ^= 0x55;
            let repaired = fix(&broken).unwrap_or_else(|| panic!("{}: nothing repaired", file.display()));
            assert!(fix(&repaired).is_none(), "{}: repairing twice changed more", file.display());
        }
    }
}
