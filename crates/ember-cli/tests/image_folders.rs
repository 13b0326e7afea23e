//! Real images end to end: train, eval and predict on an image folder built from real MNIST
//! digits (PNG and JPEG, grey and RGB, mixed sizes), CIFAR-format binary batches, and clear
//! errors for broken folders.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_one_line_error, ember, ember_into, last_json, path_in_tempdir};
use image::{DynamicImage, GrayImage};

/// The digit classes' folder names, deliberately not in label order of the IDX files' digits:
/// class names come from the sorted folder names.
const CLASSES: [&str; 3] = ["one", "two", "zero"];
const DIGITS: [u8; 3] = [1, 2, 0];

/// Real digits from the bundled sample: `per_class` of each class in `DIGITS`, from the
/// training or test half.
fn digits(train: bool, per_class: usize) -> Vec<(usize, GrayImage)> {
    let (images, labels) = sample(train);
    let mut out = Vec::new();
    for (class, digit) in DIGITS.iter().enumerate() {
        let found = labels.iter().enumerate().filter(|(_, l)| *l == digit).take(per_class);
        for (i, _) in found {
            let pixels = images[i * 784..(i + 1) * 784].to_vec();
            out.push((class, GrayImage::from_raw(28, 28, pixels).unwrap()));
        }
    }
    out
}

/// The bundled MNIST sample's raw pixels and labels (the IDX files under ember-data).
fn sample(train: bool) -> (Vec<u8>, Vec<u8>) {
    use std::io::Read;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ember-data/assets/mnist-sample");
    let prefix = if train { "train" } else { "t10k" };
    let read = |name: &str, skip: usize| {
        let mut bytes = Vec::new();
        let file = std::fs::File::open(dir.join(name)).unwrap();
        flate2::read::GzDecoder::new(file).read_to_end(&mut bytes).unwrap();
        bytes[skip..].to_vec()
    };
    (read(&format!("{prefix}-images-idx3-ubyte.gz"), 16), read(&format!("{prefix}-labels-idx1-ubyte.gz"), 8))
}

/// Writes `images` under `dir/<class>/`: every other one as JPEG, every third one as RGB, sizes
/// from 20 to 56 pixels (the folder reader and the transforms must cope).
fn write_split(dir: &Path, images: &[(usize, GrayImage)]) {
    for (i, (class, img)) in images.iter().enumerate() {
        let folder = dir.join(CLASSES[*class]);
        std::fs::create_dir_all(&folder).unwrap();
        let side = 20 + (i as u32 * 7) % 37;
        let img = DynamicImage::ImageLuma8(img.clone()).resize_exact(
            side,
            side + (i as u32 % 3),
            image::imageops::FilterType::Triangle,
        );
        let img = if i % 3 == 0 { DynamicImage::ImageRgb8(img.to_rgb8()) } else { img };
        let ext = if i % 2 == 0 { "png" } else { "jpg" };
        img.save(folder.join(format!("{i:04}.{ext}"))).unwrap();
    }
}

fn folder(root: &Path) -> PathBuf {
    write_split(&root.join("train"), &digits(true, 40));
    write_split(&root.join("test"), &digits(false, 20));
    root.to_path_buf()
}

fn stdout(out: &std::process::Output) -> String {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn train_eval_predict_on_an_image_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let root = folder(&tmp.path().join("digits"));
    let run = tmp.path().join("run");
    let (data, out) = (root.to_str().unwrap(), run.to_str().unwrap());
    let trained = stdout(&ember(&[
        "train",
        "--data-dir",
        data,
        "--model",
        "mnist-cnn",
        "--epochs",
        "4",
        "--batch-size",
        "16",
        "--out",
        out,
        "--json",
    ]));
    // 120 training images: 12 carved for validation (stratified 10 %), the 60 test images kept apart.
    assert!(
        trained.contains("train:      ") && trained.contains("(120 examples), less the validation examples (108 left)"),
        "{trained}"
    );
    assert!(
        trained.contains("validation: 10 % of the training examples, stratified, seed 42 (12 examples)"),
        "{trained}"
    );
    assert!(trained.contains("test:       ") && trained.contains("test (60 examples)"), "{trained}");
    let result = last_json(&trained);
    let accuracy = result["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.8, "three digit classes after 4 epochs: {accuracy}");
    let run_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["class_names"], serde_json::json!(CLASSES));
    assert_eq!(run_json["dataset"], "folder");

    // The checkpoint alone rebuilds model, input, classes and preprocessing.
    let model = run.join("model.safetensors");
    let evaluated =
        last_json(&stdout(&ember(&["eval", "--checkpoint", model.to_str().unwrap(), "--data-dir", data, "--json"])));
    assert_eq!(evaluated["accuracy"].as_f64().unwrap(), accuracy, "eval reproduces the run's test accuracy");
    assert_eq!(evaluated["images"], 60);

    // predict names the folder's classes with no --labels.
    let img = std::fs::read_dir(root.join("test/two")).unwrap().next().unwrap().unwrap().path();
    let predicted = last_json(&stdout(&ember(&[
        "predict",
        "--weights",
        model.to_str().unwrap(),
        img.to_str().unwrap(),
        "--top",
        "3",
        "--json",
    ])));
    let labels: Vec<&str> =
        predicted["predictions"][0]["top"].as_array().unwrap().iter().map(|t| t["label"].as_str().unwrap()).collect();
    let mut sorted = labels.clone();
    sorted.sort();
    assert_eq!(sorted, CLASSES.to_vec(), "{predicted}");
}

#[test]
fn cifar_binary_batches_train_like_any_data() {
    let (tmp, dir) = path_in_tempdir("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    // 40 records per file in CIFAR-10's format: label byte, then R, G and B planes of 32x32.
    let record = |i: usize| {
        let label = (i % 10) as u8;
        let mut r = vec![label];
        r.extend((0..3072).map(|p| ((p * 7 + i * 13 + label as usize * 25) % 256) as u8));
        r
    };
    for (f, name) in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ]
    .iter()
    .enumerate()
    {
        let bytes: Vec<u8> = (0..40).flat_map(|i| record(f * 40 + i)).collect();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let out = tmp.path().join("run");
    let trained = stdout(&ember_into(
        &out,
        &["train", "--data-dir", tmp.path().to_str().unwrap(), "--model", "vgg-small", "--epochs", "1"],
    ));
    assert!(trained.contains("training vgg-small (3x32x32 input, 10 classes"), "{trained}");
    assert!(trained.contains("on cifar10 data"), "{trained}");
    assert_eq!(last_json(&trained)["test_images"], 40);
    let info = stdout(&ember(&["data", "info", "--data-dir", tmp.path().to_str().unwrap(), "--json"]));
    assert_eq!(last_json(&info)["splits"][0]["examples"], 200);
}

#[test]
fn broken_folders_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let root = folder(&tmp.path().join("digits"));
    let data = root.to_str().unwrap().to_string();
    let run = |extra: &[&str]| {
        let out = tmp.path().join("run");
        let mut args =
            vec!["train", "--data-dir", &data, "--model", "mnist-cnn", "--epochs", "1", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        ember(&args)
    };
    // An undecodable image is named; --skip-bad-images continues and counts it.
    let bad = root.join("train/two/broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n not really").unwrap();
    assert_one_line_error(&run(&[]), &["broken.png"]);
    let skipped = stdout(&run(&["--skip-bad-images"]));
    assert!(skipped.contains("skipped 1 images that cannot be decoded"), "{skipped}");
    std::fs::remove_file(&bad).unwrap();

    // An empty class folder.
    std::fs::create_dir_all(root.join("train/three")).unwrap();
    assert_one_line_error(&run(&[]), &["three", "holds no images"]);
    // A test folder whose classes differ from the training folder's.
    std::fs::create_dir_all(root.join("test/three")).unwrap();
    std::fs::write(root.join("train/three/x.png"), b"").unwrap();
    std::fs::remove_dir_all(root.join("train/three")).unwrap();
    assert_one_line_error(&run(&[]), &["test", "differ from the training classes", "three"]);
    // No class folders at all.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(empty.join("train")).unwrap();
    let out = ember(&["train", "--data-dir", empty.to_str().unwrap(), "--epochs", "1"]);
    assert_one_line_error(&out, &["has no class folders"]);
}
