//! CIFAR, image folders and CSV: parsing generated fixtures, and rejecting bad files by name.

use std::path::Path;

use ember_data::{
    Cifar, CifarKind, ColorMode, CsvDataset, CsvOptions, Dataset, Error, Features, ImageFolder, ImageFolderOptions,
    LabelColumn, Split,
};

/// A CIFAR record: label bytes, then the R, G, B planes filled with (r, g, b).
fn record(labels: &[u8], rgb: [u8; 3]) -> Vec<u8> {
    let mut v = labels.to_vec();
    for c in rgb {
        v.extend(std::iter::repeat_n(c, 1024));
    }
    v
}

#[test]
fn cifar10_reads_every_batch_file_with_planar_channels() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&sub).unwrap();
    for b in 1..=5u8 {
        let bytes: Vec<u8> = (0..3u8).flat_map(|i| record(&[(b + i) % 10], [b, i, 200])).collect();
        std::fs::write(sub.join(format!("data_batch_{b}.bin")), bytes).unwrap();
    }
    std::fs::write(sub.join("test_batch.bin"), record(&[9], [1, 2, 3])).unwrap();
    let train = Cifar::load(dir.path(), CifarKind::Cifar10, Split::Train).unwrap();
    assert_eq!((train.len(), train.classes()), (15, 10));
    let ex = train.get(4).unwrap(); // batch 2, record 1
    assert_eq!(ex.label, 3); // (b + i) % 10 with b = 2, i = 1
    match ex.features {
        Features::Rgb(img) => {
            assert_eq!(img.dimensions(), (32, 32));
            assert_eq!(img.get_pixel(31, 31).0, [2, 1, 200]);
        }
        other => panic!("{other:?}"),
    }
    let test = Cifar::load(dir.path(), CifarKind::Cifar10, Split::Test).unwrap();
    assert_eq!(test.label(0).unwrap(), 9);
}

#[test]
fn cifar100_reads_fine_or_coarse_labels() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.bin"), [record(&[3, 77], [0, 0, 0]), record(&[19, 99], [0, 0, 0])].concat())
        .unwrap();
    let fine = Cifar::load(dir.path(), CifarKind::Cifar100Fine, Split::Train).unwrap();
    let coarse = Cifar::load(dir.path(), CifarKind::Cifar100Coarse, Split::Train).unwrap();
    assert_eq!((fine.label(0).unwrap(), fine.label(1).unwrap(), fine.classes()), (77, 99, 100));
    assert_eq!((coarse.label(0).unwrap(), coarse.label(1).unwrap(), coarse.classes()), (3, 19, 20));
}

#[test]
fn cifar_rejects_truncated_and_mislabelled_files_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = record(&[1], [0, 0, 0]);
    bytes.truncate(3000);
    std::fs::write(dir.path().join("test_batch.bin"), &bytes).unwrap();
    let err = Cifar::load(dir.path(), CifarKind::Cifar10, Split::Test).unwrap_err();
    assert!(
        matches!(&err, Error::Truncated { found: 3000, .. }) && err.to_string().contains("test_batch.bin"),
        "{err}"
    );
    std::fs::write(dir.path().join("test_batch.bin"), record(&[12], [0, 0, 0])).unwrap();
    let err = Cifar::load(dir.path(), CifarKind::Cifar10, Split::Test).unwrap_err();
    assert!(matches!(err, Error::LabelOutOfRange { label: 12, .. }), "{err}");
    let err = Cifar::load(dir.path(), CifarKind::Cifar10, Split::Train).unwrap_err();
    assert!(matches!(&err, Error::MissingFile { file, .. } if file == "data_batch_1.bin"), "{err}");
}

fn write_png(path: &Path, w: u32, h: u32, value: u8) {
    image::RgbImage::from_pixel(w, h, image::Rgb([value, value / 2, 255 - value])).save(path).unwrap();
}

#[test]
fn image_folder_sorts_classes_resizes_and_converts() {
    let dir = tempfile::tempdir().unwrap();
    for (class, n) in [("zebra", 2), ("ant", 3)] {
        std::fs::create_dir(dir.path().join(class)).unwrap();
        for i in 0..n {
            write_png(&dir.path().join(class).join(format!("{i}.png")), 10 + i, 8, 100);
        }
    }
    std::fs::write(dir.path().join("ant").join("notes.txt"), "not an image").unwrap();
    std::fs::write(dir.path().join("ant").join(".hidden.png"), "hidden").unwrap();
    let opts = ImageFolderOptions { color: ColorMode::Gray, size: Some((6, 4)), ..Default::default() };
    let folder = ImageFolder::open(dir.path(), opts).unwrap();
    assert_eq!(folder.class_names(), ["ant", "zebra"]);
    assert_eq!((folder.len(), folder.classes()), (5, 2));
    assert_eq!((folder.label(0).unwrap(), folder.label(4).unwrap()), (0, 1));
    match folder.get(3).unwrap().features {
        Features::Gray(img) => assert_eq!(img.dimensions(), (6, 4)),
        other => panic!("{other:?}"),
    }
    assert!(folder.verify().is_empty());
}

#[test]
fn image_folder_reports_unreadable_images_instead_of_skipping_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("cat")).unwrap();
    write_png(&dir.path().join("cat").join("a.png"), 4, 4, 10);
    std::fs::write(dir.path().join("cat").join("b.jpg"), b"definitely not a jpeg").unwrap();
    let folder = ImageFolder::open(dir.path(), ImageFolderOptions::default()).unwrap();
    assert_eq!(folder.len(), 2, "the broken file is an example, not silently dropped");
    let bad = folder.verify();
    assert_eq!(bad.len(), 1);
    assert!(bad[0].0.ends_with("b.jpg"));
    let err = folder.get(1).unwrap_err();
    assert!(matches!(err, Error::Decode { .. }) && err.to_string().contains("b.jpg"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    assert!(ImageFolder::open(empty.path(), ImageFolderOptions::default()).is_err());
}

#[test]
fn csv_reads_features_and_label_by_name_or_position() {
    let text = "sepal,petal,species\n5.1,1.4,0\n6.2,4.5,1\n\n7.7,6.7,2\n";
    let ds = CsvDataset::parse(text, Path::new("iris.csv"), &CsvOptions::default()).unwrap();
    assert_eq!((ds.len(), ds.width(), ds.classes()), (3, 2, 3));
    assert_eq!(ds.get(1).unwrap().features, Features::Vector(vec![6.2, 4.5]));
    let opts = CsvOptions { label: LabelColumn::Name("species".into()), ..Default::default() };
    assert_eq!(CsvDataset::parse(text, Path::new("iris.csv"), &opts).unwrap(), ds);
    let first = CsvOptions { label: LabelColumn::Index(0), has_header: false, delimiter: ';' };
    let ds = CsvDataset::parse("1;0.5;0.25\n0;1.5;2.5\n", Path::new("t.csv"), &first).unwrap();
    assert_eq!(ds.label(0).unwrap(), 1);
    assert_eq!(ds.get(1).unwrap().features, Features::Vector(vec![1.5, 2.5]));
}

#[test]
fn csv_errors_name_file_and_line() {
    let opts = CsvOptions::default();
    let err = CsvDataset::parse("a,b,label\n1,2,0\n3,x,1\n", Path::new("data.csv"), &opts).unwrap_err();
    assert_eq!(err.to_string(), "data.csv:3: column `b`: `x` is not a number");
    let err = CsvDataset::parse("a,b,label\n1,2,0\n3,4\n", Path::new("data.csv"), &opts).unwrap_err();
    assert!(err.to_string().starts_with("data.csv:3: 2 fields"), "{err}");
    let err = CsvDataset::parse("a,b,label\n1,2,-1\n", Path::new("data.csv"), &opts).unwrap_err();
    assert!(err.to_string().contains("label `-1`"), "{err}");
    // A label sizes the class count: 4294967295 would mean 2^32 classes.
    let err = CsvDataset::parse("a,b,label\n1,2,4294967295\n", Path::new("data.csv"), &opts).unwrap_err();
    assert!(err.to_string().starts_with("data.csv:2: label 4294967295 is beyond the limit"), "{err}");
    let opts = CsvOptions { label: LabelColumn::Name("class".into()), ..Default::default() };
    let err = CsvDataset::parse("a,b,label\n1,2,0\n", Path::new("data.csv"), &opts).unwrap_err();
    assert!(err.to_string().contains("no column named `class`"), "{err}");
}

#[test]
fn image_folder_splits_in_one_call() {
    use ember_data::ImageFolder;
    let dir = tempfile::tempdir().unwrap();
    for (class, n) in [("cat", 10), ("dog", 20)] {
        let folder = dir.path().join(class);
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..n {
            image::RgbImage::from_fn(7 + i, 5, |x, y| image::Rgb([x as u8 * 9, y as u8 * 9, i as u8]))
                .save(folder.join(format!("{i}.png")))
                .unwrap();
        }
    }
    let splits = ImageFolder::splits(dir.path(), 0.2, 7).unwrap();
    assert_eq!(splits.class_names, ["cat", "dog"]);
    let val = splits.val.as_ref().unwrap();
    // Stratified: 20 % of each class validates.
    let val_labels: Vec<u32> = (0..val.len()).map(|i| val.label(i).unwrap()).collect();
    assert_eq!(val_labels.iter().filter(|&&l| l == 0).count(), 2);
    assert_eq!(val_labels.iter().filter(|&&l| l == 1).count(), 4);
    assert_eq!(splits.train.len(), 24);
    assert!(splits.test.is_none());
    assert!(splits.origins.val.starts_with("20 % of the training examples"), "{:?}", splits.origins);
    // The same seed gives the same split.
    let again = ImageFolder::splits(dir.path(), 0.2, 7).unwrap();
    let again_val = again.val.unwrap();
    assert!((0..val.len()).all(|i| val.origin(i) == again_val.origin(i)));
}
