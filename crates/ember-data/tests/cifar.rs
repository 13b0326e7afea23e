//! CIFAR-10/100 binary batches written byte by byte in the published format (label byte(s),
//! then the 32x32 red plane, green plane, blue plane, each row-major), read back exactly.
//!
//! Every pixel of every record has its own value, so a swapped channel, a transposed plane or a
//! record read from the wrong offset changes what the reader returns.

use std::path::{Path, PathBuf};

use candle_core::Device;
use ember_data::{Cifar, CifarKind, DataLoader, Dataset, Error, Features, Split};

const SIDE: usize = 32;
const PLANE: usize = SIDE * SIDE;

/// The value of channel `c` at `(y, x)` in record `record`: a multiplicative hash, so that no two
/// neighbouring pixels, channels or records share a pattern.
fn pixel(record: u32, c: usize, y: usize, x: usize) -> u8 {
    let position = (c * PLANE + y * SIDE + x) as u32;
    let h = record.wrapping_mul(2_654_435_761) ^ position.wrapping_mul(40_503).wrapping_add(0x9e37);
    (h.wrapping_mul(0x85eb_ca6b) >> 24) as u8
}

/// One record as the CIFAR binary format lays it out: `labels`, then R, G, B planes.
fn record(labels: &[u8], id: u32) -> Vec<u8> {
    let mut v = labels.to_vec();
    for c in 0..3 {
        for y in 0..SIDE {
            for x in 0..SIDE {
                v.push(pixel(id, c, y, x));
            }
        }
    }
    v
}

/// Writes `ids` as one batch file; CIFAR-10 labels are `id % 10`.
fn write_cifar10_batch(dir: &Path, name: &str, ids: std::ops::Range<u32>) -> PathBuf {
    let bytes: Vec<u8> = ids.flat_map(|id| record(&[(id % 10) as u8], id)).collect();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// CIFAR-10's six files: 5 x 60 training records (ids 0..300), 80 test records (ids 1000..1080).
fn write_cifar10(dir: &Path) {
    for b in 0..5u32 {
        write_cifar10_batch(dir, &format!("data_batch_{}.bin", b + 1), b * 60..(b + 1) * 60);
    }
    write_cifar10_batch(dir, "test_batch.bin", 1000..1080);
}

/// Asserts that `data[index]` is record `id`, pixel for pixel, in RGB order.
fn assert_record(data: &Cifar, index: usize, id: u32, label: u32) {
    let example = data.get(index).unwrap();
    assert_eq!(example.label, label, "label of example {index}");
    let Features::Rgb(image) = example.features else { panic!("example {index} is not RGB") };
    assert_eq!(image.dimensions(), (32, 32));
    for y in 0..SIDE {
        for x in 0..SIDE {
            let expected = [pixel(id, 0, y, x), pixel(id, 1, y, x), pixel(id, 2, y, x)];
            assert_eq!(image.get_pixel(x as u32, y as u32).0, expected, "example {index} at (x {x}, y {y})");
        }
    }
}

#[test]
fn cifar10_returns_exactly_the_labels_and_pixels_written() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar10(dir.path());
    let train = Cifar::load(dir.path(), CifarKind::Cifar10, Split::Train).unwrap();
    assert_eq!((train.len(), train.classes()), (300, 10));
    // Batches are concatenated in file order 1..5, records in file order.
    for index in 0..300 {
        assert_record(&train, index, index as u32, index as u32 % 10);
    }
    let test = Cifar::load(dir.path(), CifarKind::Cifar10, Split::Test).unwrap();
    assert_eq!((test.len(), test.classes()), (80, 10));
    for index in 0..80 {
        assert_record(&test, index, 1000 + index as u32, index as u32 % 10);
        assert_eq!(test.label(index).unwrap(), index as u32 % 10);
    }
}

#[test]
fn cifar10_is_found_in_its_archive_folder() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&nested).unwrap();
    write_cifar10(&nested);
    let test = Cifar::load(dir.path(), CifarKind::Cifar10, Split::Test).unwrap();
    assert_eq!(test.len(), 80);
    assert_record(&test, 79, 1079, 9);
}

#[test]
fn cifar_loader_batches_keep_the_channel_planes() {
    // The loader's (b, 3, 32, 32) tensor is the file's planes again, scaled to [0, 1].
    let dir = tempfile::tempdir().unwrap();
    write_cifar10(dir.path());
    let test = std::sync::Arc::new(Cifar::load(dir.path(), CifarKind::Cifar10, Split::Test).unwrap());
    let batch = DataLoader::new(test, 8).epoch(0, &Device::Cpu).next().unwrap().unwrap();
    assert_eq!(batch.images.dims(), &[8, 3, 32, 32]);
    assert_eq!(batch.labels.to_vec1::<u32>().unwrap(), (0..8).collect::<Vec<u32>>());
    let values = batch.images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (i, chunk) in values.chunks_exact(3 * PLANE).enumerate() {
        let written = &record(&[0], 1000 + i as u32)[1..];
        let expected: Vec<f32> = written.iter().map(|&p| p as f32 / 255.0).collect();
        assert_eq!(chunk, expected.as_slice(), "batch image {i}");
    }
}

#[test]
fn cifar100_reads_coarse_then_fine_label_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // Coarse label first, fine second; pick pairs where the two differ and cover both ranges.
    let labels = |id: u32| [(id % 20) as u8, ((id * 7) % 100) as u8];
    let train: Vec<u8> = (0..200).flat_map(|id| record(&labels(id), id)).collect();
    let test: Vec<u8> = (500..550).flat_map(|id| record(&labels(id), id)).collect();
    std::fs::write(dir.path().join("train.bin"), train).unwrap();
    std::fs::write(dir.path().join("test.bin"), test).unwrap();

    let fine = Cifar::load(dir.path(), CifarKind::Cifar100Fine, Split::Train).unwrap();
    let coarse = Cifar::load(dir.path(), CifarKind::Cifar100Coarse, Split::Train).unwrap();
    assert_eq!((fine.len(), fine.classes(), coarse.len(), coarse.classes()), (200, 100, 200, 20));
    for index in 0..200 {
        let id = index as u32;
        assert_record(&fine, index, id, (id * 7) % 100);
        assert_record(&coarse, index, id, id % 20);
    }
    let fine_test = Cifar::load(dir.path(), CifarKind::Cifar100Fine, Split::Test).unwrap();
    assert_eq!(fine_test.len(), 50);
    assert_record(&fine_test, 49, 549, (549 * 7) % 100);
}

#[test]
fn cifar_rejects_a_truncated_batch_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar10(dir.path());
    // The third training batch loses the last byte of its last record.
    let path = dir.path().join("data_batch_3.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.pop();
    std::fs::write(&path, &bytes).unwrap();
    let err = Cifar::load(dir.path(), CifarKind::Cifar10, Split::Train).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(&err, Error::Truncated { path: p, expected, found } if *p == path && *expected == 60 * 3073 && *found == 60 * 3073 - 1),
        "{message}"
    );
    assert!(message.contains("data_batch_3.bin"), "{message}");
    // An empty batch file is truncated too, not an empty dataset.
    std::fs::write(&path, []).unwrap();
    let err = Cifar::load(dir.path(), CifarKind::Cifar10, Split::Train).unwrap_err();
    assert!(matches!(&err, Error::Truncated { found: 0, .. }) && err.to_string().contains("data_batch_3.bin"), "{err}");
}

#[test]
fn cifar100_file_read_as_cifar10_is_rejected() {
    // 3,074-byte records are not a whole number of 3,073-byte records (for fewer than 3,073 of
    // them), so the wrong kind fails instead of returning shifted pixels.
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..5).flat_map(|id| record(&[1, 2], id)).collect();
    std::fs::write(dir.path().join("test_batch.bin"), bytes).unwrap();
    let err = Cifar::load(dir.path(), CifarKind::Cifar10, Split::Test).unwrap_err();
    assert!(matches!(&err, Error::Truncated { .. }) && err.to_string().contains("test_batch.bin"), "{err}");
}

#[test]
fn cifar_rejects_labels_out_of_range_naming_file_and_record() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = [record(&[3], 0), record(&[10], 1)].concat();
    std::fs::write(dir.path().join("test_batch.bin"), bytes).unwrap();
    let err = Cifar::load(dir.path(), CifarKind::Cifar10, Split::Test).unwrap_err();
    assert!(matches!(&err, Error::LabelOutOfRange { index: 1, label: 10, classes: 10, .. }), "{err}");
    assert!(err.to_string().contains("test_batch.bin"), "{err}");

    let bytes = [record(&[19, 99], 0), record(&[20, 5], 1)].concat();
    std::fs::write(dir.path().join("test.bin"), bytes).unwrap();
    assert!(Cifar::load(dir.path(), CifarKind::Cifar100Fine, Split::Test).is_ok());
    let err = Cifar::load(dir.path(), CifarKind::Cifar100Coarse, Split::Test).unwrap_err();
    assert!(matches!(&err, Error::LabelOutOfRange { index: 1, label: 20, classes: 20, .. }), "{err}");
}

#[test]
fn cifar_rejected_file_leaves_the_dataset_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar10(dir.path());
    let mut test = Cifar::load(dir.path(), CifarKind::Cifar10, Split::Test).unwrap();
    // A bad label in the last record: nothing of this file may be appended.
    let bad = dir.path().join("bad.bin");
    std::fs::write(&bad, [record(&[1], 7), record(&[1], 8), record(&[200], 9)].concat()).unwrap();
    assert!(matches!(test.append_file(&bad), Err(Error::LabelOutOfRange { index: 2, .. })));
    assert_eq!(test.len(), 80);
    let good = write_cifar10_batch(dir.path(), "extra.bin", 2000..2003);
    test.append_file(&good).unwrap();
    assert_eq!(test.len(), 83);
    assert_record(&test, 80, 2000, 0);
    assert_record(&test, 82, 2002, 2);
}

#[test]
fn cifar_index_past_the_end_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar10(dir.path());
    let test = Cifar::load(dir.path(), CifarKind::Cifar10, Split::Test).unwrap();
    for index in [80, 81, usize::MAX / 3072 + 1, usize::MAX] {
        assert!(matches!(test.get(index), Err(Error::Invalid { .. })), "get({index})");
        assert!(matches!(test.label(index), Err(Error::Invalid { .. })), "label({index})");
        assert!(test.image(index).is_none(), "image({index})");
    }
}

#[test]
fn cifar_missing_batch_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar10(dir.path());
    std::fs::remove_file(dir.path().join("data_batch_5.bin")).unwrap();
    let err = Cifar::load(dir.path(), CifarKind::Cifar10, Split::Train).unwrap_err();
    assert!(matches!(&err, Error::MissingFile { file, .. } if file == "data_batch_5.bin"), "{err}");
    let err = Cifar::load(dir.path(), CifarKind::Cifar100Fine, Split::Train).unwrap_err();
    assert!(matches!(&err, Error::MissingFile { file, .. } if file == "train.bin"), "{err}");
}
