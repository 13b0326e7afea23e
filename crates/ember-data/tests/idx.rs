//! IDX reading: the real bundled sample, and every kind of malformed file.

use std::io::Write;
use std::path::{Path, PathBuf};

use ember_data::{load_mnist_family, read_idx, Error, Split};

fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A valid split of `n` 4x3 images with labels `i % 10`.
fn write_split(dir: &Path, prefix: &str, n: u32, gz: bool) {
    let mut images = header(0x0803, &[n, 4, 3]);
    images.extend((0..n * 12).map(|i| (i % 251) as u8));
    let mut labels = header(0x0801, &[n]);
    labels.extend((0..n).map(|i| (i % 10) as u8));
    let (images, labels, ext) = if gz { (gzip(&images), gzip(&labels), ".gz") } else { (images, labels, "") };
    write(dir, &format!("{prefix}-images-idx3-ubyte{ext}"), &images);
    write(dir, &format!("{prefix}-labels-idx1-ubyte{ext}"), &labels);
}

#[test]
fn idx_reader_reads_raw_and_gzip_files_alike() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let gz = dir.path().join("gz");
    std::fs::create_dir_all(&raw).unwrap();
    std::fs::create_dir_all(&gz).unwrap();
    write_split(&raw, "t10k", 25, false);
    write_split(&gz, "t10k", 25, true);
    let a = load_mnist_family(&raw, Split::Test).unwrap();
    let b = load_mnist_family(&gz, Split::Test).unwrap();
    assert_eq!(a, b);
    assert_eq!((a.len(), a.height(), a.width()), (25, 4, 3));
    assert_eq!(a.pixels(1), &[12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23]);
    assert_eq!(a.labels()[13], 3);
}

#[test]
fn idx_reader_rejects_truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = header(0x0803, &[10, 28, 28]);
    bytes.extend(vec![0u8; 28 * 28 * 10 - 5]);
    for (name, content) in [("raw", bytes.clone()), ("gz", gzip(&bytes))] {
        let path = write(dir.path(), name, &content);
        match read_idx(&path, 3, "images").unwrap_err() {
            Error::Truncated { path: p, expected, found } => {
                assert_eq!(p, path);
                assert_eq!((expected, found), (7840, 7835));
            }
            other => panic!("{name}: {other}"),
        }
    }
}

#[test]
fn idx_reader_rejects_a_file_that_ends_inside_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "short", &header(0x0803, &[10])[..6]);
    let err = read_idx(&path, 3, "images").unwrap_err();
    assert!(matches!(err, Error::TruncatedHeader { header_len: 16, .. }), "{err}");
    assert!(err.to_string().contains("short"), "{err}");
}

#[test]
fn idx_reader_rejects_wrong_magic_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // A labels file where an images file is expected.
    let mut bytes = header(0x0801, &[3]);
    bytes.extend([1, 2, 3]);
    let path = write(dir.path(), "train-images-idx3-ubyte", &bytes);
    let err = read_idx(&path, 3, "images").unwrap_err();
    match &err {
        Error::BadMagic { found, expected, .. } => assert_eq!((*found, *expected), (0x0801, 0x0803)),
        other => panic!("{other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("train-images-idx3-ubyte") && msg.contains("0x00000801"), "{msg}");
}

#[test]
fn idx_reader_rejects_trailing_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = header(0x0801, &[4]);
    bytes.extend([1, 2, 3, 4, 5, 6]);
    for (name, content) in [("raw", bytes.clone()), ("gz", gzip(&bytes))] {
        let path = write(dir.path(), name, &content);
        let err = read_idx(&path, 1, "labels").unwrap_err();
        assert!(matches!(err, Error::TrailingBytes { expected: 4, extra: 2, .. }), "{name}: {err}");
    }
}

#[test]
fn idx_reader_checks_a_hostile_header_before_allocating() {
    // The header claims 4 G x 65 k x 65 k bytes; the file holds 10. This must fail fast with
    // a typed error, not try to allocate what the header claims.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = header(0x0803, &[u32::MAX, 65535, 65535]);
    bytes.extend([0u8; 10]);
    for (name, content) in [("raw", bytes.clone()), ("gz", gzip(&bytes))] {
        let path = write(dir.path(), name, &content);
        let err = read_idx(&path, 3, "images").unwrap_err();
        assert!(
            matches!(err, Error::Truncated { found: 10, .. } | Error::BadDimensions { .. } | Error::TooLarge { .. }),
            "{name}: {err}"
        );
    }
    // Zero-sized images are rejected as implausible.
    let path = write(dir.path(), "zero", &header(0x0803, &[5, 0, 28]));
    assert!(matches!(read_idx(&path, 3, "images").unwrap_err(), Error::BadDimensions { .. }));
}

#[test]
fn idx_reader_reports_corrupt_gzip_as_io_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = gzip(&header(0x0801, &[3]));
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    bytes.truncate(n - 3);
    let path = write(dir.path(), "labels.gz", &bytes);
    let err = read_idx(&path, 1, "labels").unwrap_err();
    assert!(err.to_string().contains("labels.gz"), "{err}");
}

/// The error of loading a training split of `n_images` images whose labels file holds `labels`.
fn train_split_error_with_labels(n_images: u32, labels: &[u8]) -> Error {
    let dir = tempfile::tempdir().unwrap();
    write_split(dir.path(), "train", n_images, false);
    let mut file = header(0x0801, &[labels.len() as u32]);
    file.extend(labels);
    write(dir.path(), "train-labels-idx1-ubyte", &file);
    load_mnist_family(dir.path(), Split::Train).unwrap_err()
}

#[test]
fn split_rejects_image_and_label_counts_that_differ() {
    let labels: Vec<u8> = (0..19).map(|i| (i % 10) as u8).collect();
    let err = train_split_error_with_labels(20, &labels);
    assert!(matches!(err, Error::CountMismatch { n_images: 20, n_labels: 19, .. }), "{err}");
}

#[test]
fn split_rejects_labels_outside_the_ten_classes() {
    let err = train_split_error_with_labels(5, &[0, 1, 2, 12, 4]);
    assert!(matches!(err, Error::LabelOutOfRange { index: 3, label: 12, .. }), "{err}");
}

#[test]
fn split_reports_which_file_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    write_split(dir.path(), "t10k", 5, true);
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let err = load_mnist_family(dir.path(), Split::Test).unwrap_err();
    assert!(matches!(&err, Error::MissingFile { file, .. } if file == "t10k-labels-idx1-ubyte"), "{err}");
    // The training split of this directory is missing altogether.
    assert!(matches!(load_mnist_family(dir.path(), Split::Train), Err(Error::MissingFile { .. })));
}

#[test]
fn idx_reader_refuses_a_header_promising_more_than_the_limit_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // 70,000 x 128 x 128 = 1.1 GB promised, 10 bytes present; gzip or not.
    let mut bytes = header(0x0803, &[70_000, 128, 128]);
    bytes.extend([0u8; 10]);
    for (name, data) in [("big-images", bytes.clone()), ("big-images.gz", gzip(&bytes))] {
        let path = write(dir.path(), name, &data);
        let err = read_idx(&path, 3, "images").unwrap_err();
        assert!(matches!(err, Error::TooLarge { expected: 1_146_880_000, .. }), "{name}: {err}");
        assert!(err.to_string().starts_with(&format!("{}: ", path.display())), "{err}");
    }
}

#[test]
fn idx_reader_inflates_gzip_only_as_far_as_the_header_promises() {
    let dir = tempfile::tempdir().unwrap();
    // 4 promised bytes followed by 8 MB of zeros (a small gzip "bomb").
    let mut bytes = header(0x0801, &[4]);
    bytes.extend(vec![0u8; 8 << 20]);
    let path = write(dir.path(), "bomb.gz", &gzip(&bytes));
    let err = read_idx(&path, 1, "labels").unwrap_err();
    assert!(matches!(err, Error::TrailingBytes { expected: 4, extra, .. } if extra == (8 << 20) - 4), "{err}");
}
