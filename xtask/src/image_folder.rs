//! `cargo xtask image-folder --idx DIR --out DIR [--per-class N] [--names mnist|fashion-mnist]
//! [--test-limit N] [--seed S]`: an MNIST-family IDX directory as a torchvision `ImageFolder`
//! tree, so the image-folder path of ember (decoding, mixed sizes and formats, grey and RGB
//! files) can be run end to end on data whose right answers are known.
//!
//! - `OUT/train/<class>/`: `--per-class` images of each class (default 100), a seeded choice
//!   from the training split, saved alternately as PNG and JPEG (quality 90), each resized to a
//!   seeded random size (sides in 28..=96, a third of them non-square) and saved as grey or as
//!   RGB (the grey value in all three channels) by a seeded coin.
//! - `OUT/test/<class>/`: every test image (or the first `--test-limit`), PNG, 28x28 as stored.
//!
//! Class folders are `<label>_<name>` with the name made filesystem-safe (`0_T-shirt_top`,
//! `1_Trouser`, ..., `9_Ankle_boot`) or the bare digit for MNIST, so the sorted folder names
//! (which is how `ImageFolder` numbers classes) are the dataset's label order. Files are named
//! after their index in the source split (`01234.png`), so every file can be traced back.
//! Everything depends only on the inputs and the seed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use ember_data::{load_mnist_family, LabelledImages, Split};
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const USAGE: &str = "usage: cargo xtask image-folder --idx DIR --out DIR [--per-class N] \
                     [--names mnist|fashion-mnist] [--test-limit N] [--seed S]";

/// Fashion-MNIST's class names in label order, as Zalando publishes them.
const FASHION_MNIST: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// Sides of the resized training images.
const SIDES: std::ops::RangeInclusive<u32> = 28..=96;
const JPEG_QUALITY: u8 = 90;

/// What to write; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub per_class: usize,
    pub fashion_names: bool,
    pub test_limit: Option<usize>,
    pub seed: u64,
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub classes: usize,
    pub train: usize,
    pub train_png: usize,
    pub train_jpeg: usize,
    pub train_gray: usize,
    pub train_non_square: usize,
    pub test: usize,
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut idx = None;
    let mut out = None;
    let mut options = Options { per_class: 100, fashion_names: false, test_limit: None, seed: 0 };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value; {USAGE}"));
        match flag.as_str() {
            "--idx" => idx = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--per-class" => options.per_class = number(flag, value()?)?,
            "--test-limit" => options.test_limit = Some(number(flag, value()?)?),
            "--seed" => options.seed = number(flag, value()?)?,
            "--names" => {
                options.fashion_names = match value()?.as_str() {
                    "fashion-mnist" => true,
                    "mnist" => false,
                    other => bail!("--names: `{other}` is not `mnist` or `fashion-mnist`"),
                }
            }
            _ => bail!("unknown argument `{flag}`; {USAGE}"),
        }
    }
    let (Some(idx), Some(out)) = (idx, out) else { bail!("--idx and --out are required; {USAGE}") };
    let start = Instant::now();
    let train = load_mnist_family(&idx, Split::Train)?;
    let test = load_mnist_family(&idx, Split::Test)?;
    let s = write_tree(&train, &test, &out, &options)?;
    println!(
        "image-folder: {} classes; train {} ({} PNG, {} JPEG q{JPEG_QUALITY}, {} grey, {} non-square, sides \
         {}..={}), test {} (PNG 28x28) in {} ({:.1} s, seed {})",
        s.classes,
        s.train,
        s.train_png,
        s.train_jpeg,
        s.train_gray,
        s.train_non_square,
        SIDES.start(),
        SIDES.end(),
        s.test,
        out.display(),
        start.elapsed().as_secs_f64(),
        options.seed
    );
    Ok(())
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> anyhow::Result<T> {
    value.parse().ok().with_context(|| format!("{flag}: `{value}` is not a non-negative whole number"))
}

/// The folder of class `label`: sorting these names sorts by label (single-digit labels).
pub fn class_folder(label: usize, fashion_names: bool) -> String {
    if !fashion_names {
        return label.to_string();
    }
    let safe: String =
        FASHION_MNIST[label].chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    format!("{label}_{safe}")
}

/// Writes `out/train` and `out/test`; `out` must not exist or be empty, so no stale file from an
/// earlier run can join the tree.
pub fn write_tree(
    train: &LabelledImages,
    test: &LabelledImages,
    out: &Path,
    options: &Options,
) -> anyhow::Result<Summary> {
    let classes = train.classes();
    ensure!(classes <= 10, "{classes} classes: folder names sort in label order only up to 10");
    ensure!(options.per_class > 0, "--per-class must be at least 1");
    if out.exists() {
        let mut entries = std::fs::read_dir(out).with_context(|| format!("{}: not a directory", out.display()))?;
        ensure!(
            entries.next().is_none(),
            "{}: exists and is not empty; remove it or choose another --out",
            out.display()
        );
    }
    let folders: Vec<String> = (0..classes).map(|c| class_folder(c, options.fashion_names)).collect();
    for split in ["train", "test"] {
        for folder in &folders {
            let dir = out.join(split).join(folder);
            std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
        }
    }

    let mut summary = Summary { classes, ..Summary::default() };
    let mut rng = StdRng::seed_from_u64(options.seed);
    for (label, folder) in folders.iter().enumerate() {
        let mut indices: Vec<usize> = (0..train.len()).filter(|&i| train.labels()[i] as usize == label).collect();
        ensure!(
            indices.len() >= options.per_class,
            "class {label} ({folder}) has {} training images, fewer than --per-class {}",
            indices.len(),
            options.per_class
        );
        indices.shuffle(&mut rng);
        indices.truncate(options.per_class);
        indices.sort_unstable();
        for (k, &index) in indices.iter().enumerate() {
            let (w, h) = random_size(&mut rng);
            let gray = rng.random_bool(0.5);
            let resized = image::imageops::resize(&train.image(index), w, h, FilterType::Triangle);
            let image = if gray {
                DynamicImage::ImageLuma8(resized)
            } else {
                DynamicImage::ImageLuma8(resized).to_rgb8().into()
            };
            let jpeg = k % 2 == 1;
            let path = out.join("train").join(folder).join(format!("{index:05}.{}", if jpeg { "jpg" } else { "png" }));
            save(&image, &path, jpeg)?;
            summary.train += 1;
            summary.train_png += usize::from(!jpeg);
            summary.train_jpeg += usize::from(jpeg);
            summary.train_gray += usize::from(gray);
            summary.train_non_square += usize::from(w != h);
        }
    }

    let n_test = options.test_limit.map_or(test.len(), |n| n.min(test.len()));
    for index in 0..n_test {
        let folder = &folders[test.labels()[index] as usize];
        let path = out.join("test").join(folder).join(format!("{index:05}.png"));
        save(&DynamicImage::ImageLuma8(test.image(index)), &path, false)?;
        summary.test += 1;
    }
    Ok(summary)
}

/// A side in [`SIDES`]; a third of the images get an independent second side (non-square).
fn random_size(rng: &mut StdRng) -> (u32, u32) {
    let w = rng.random_range(SIDES);
    let h = if rng.random_bool(1.0 / 3.0) { rng.random_range(SIDES) } else { w };
    (w, h)
}

fn save(image: &DynamicImage, path: &Path, jpeg: bool) -> anyhow::Result<()> {
    let write = || -> anyhow::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        if jpeg {
            image.write_with_encoder(JpegEncoder::new_with_quality(&mut file, JPEG_QUALITY))?;
        } else {
            image.write_to(&mut file, ImageFormat::Png)?;
        }
        std::io::Write::flush(&mut file)?;
        Ok(())
    };
    write().with_context(|| format!("{}: cannot write", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_data::{mnist_sample, ColorMode, Dataset, Features, ImageFolder, ImageFolderOptions};
    use image::ColorType;

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        v.sort();
        v
    }

    #[test]
    fn image_folder_tree_has_the_counts_formats_and_sizes_asked_for() {
        let (train, test) = (mnist_sample(Split::Train).unwrap(), mnist_sample(Split::Test).unwrap());
        let out = tempfile::tempdir().unwrap();
        let options = Options { per_class: 6, fashion_names: true, test_limit: Some(40), seed: 7 };
        let summary = write_tree(&train, &test, out.path(), &options).unwrap();
        assert_eq!(
            (summary.classes, summary.train, summary.train_png, summary.train_jpeg, summary.test),
            (10, 60, 30, 30, 40)
        );

        let classes: Vec<String> = files(&out.path().join("train"))
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(classes[0], "0_T-shirt_top");
        assert_eq!(classes[9], "9_Ankle_boot");
        let (mut gray, mut rgb, mut non_square) = (0, 0, 0);
        for (label, class) in classes.iter().enumerate() {
            let paths = files(&out.path().join("train").join(class));
            assert_eq!(paths.len(), 6, "{class}");
            for path in paths {
                let index: usize = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
                assert_eq!(train.labels()[index] as usize, label, "{}", path.display());
                let bytes = std::fs::read(&path).unwrap();
                let format = image::guess_format(&bytes).unwrap();
                let ext = path.extension().unwrap().to_str().unwrap();
                assert_eq!(
                    format,
                    if ext == "png" { ImageFormat::Png } else { ImageFormat::Jpeg },
                    "{}",
                    path.display()
                );
                let image = image::load_from_memory(&bytes).unwrap();
                assert!(SIDES.contains(&image.width()) && SIDES.contains(&image.height()), "{}", path.display());
                non_square += usize::from(image.width() != image.height());
                match image.color() {
                    ColorType::L8 => gray += 1,
                    ColorType::Rgb8 => rgb += 1,
                    other => panic!("{}: {other:?}", path.display()),
                }
            }
        }
        assert_eq!((gray, rgb, non_square), (summary.train_gray, 60 - summary.train_gray, summary.train_non_square));
        assert!(gray > 0 && rgb > 0 && non_square > 0, "gray {gray}, rgb {rgb}, non-square {non_square}");
        let train_folder = ImageFolder::open(out.path().join("train"), ImageFolderOptions::default()).unwrap();
        assert_eq!((train_folder.len(), train_folder.classes()), (60, 10));
        assert_eq!(train_folder.verify(), vec![], "every file decodes through ember-data");

        // The test split is the first 40 test images, lossless at 28x28, in their class folders;
        // ImageFolder numbers the folders in label order.
        let folder = ImageFolder::open(
            out.path().join("test"),
            ImageFolderOptions { color: ColorMode::Gray, ..ImageFolderOptions::default() },
        )
        .unwrap();
        assert_eq!(folder.len(), 40);
        assert_eq!(folder.class_names(), classes.as_slice());
        for i in 0..folder.len() {
            let (path, label) = &folder.files()[i];
            let index: usize = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            assert_eq!(*label, test.labels()[index] as u32, "{}", path.display());
            let Features::Gray(image) = folder.get(i).unwrap().features else { panic!("not grey") };
            assert_eq!(image, test.image(index), "{}", path.display());
        }
    }

    #[test]
    fn image_folder_tree_is_the_same_for_the_same_seed() {
        let (train, test) = (mnist_sample(Split::Train).unwrap(), mnist_sample(Split::Test).unwrap());
        let options = Options { per_class: 3, fashion_names: false, test_limit: Some(5), seed: 1 };
        let trees: Vec<Vec<(PathBuf, Vec<u8>)>> = (0..3)
            .map(|run| {
                let out = tempfile::tempdir().unwrap();
                let options = Options { seed: if run == 2 { 2 } else { 1 }, ..options.clone() };
                write_tree(&train, &test, out.path(), &options).unwrap();
                let mut all = Vec::new();
                for split in ["train", "test"] {
                    for class in files(&out.path().join(split)) {
                        for file in files(&class) {
                            all.push((
                                file.strip_prefix(out.path()).unwrap().to_path_buf(),
                                std::fs::read(&file).unwrap(),
                            ));
                        }
                    }
                }
                all
            })
            .collect();
        assert_eq!(trees[0], trees[1]);
        assert_ne!(trees[0], trees[2]);
        assert_eq!(trees[0].first().unwrap().0, Path::new("train/0").join(trees[0][0].0.file_name().unwrap()));
    }

    #[test]
    fn image_folder_refuses_a_non_empty_output_and_too_few_images() {
        let (train, test) = (mnist_sample(Split::Train).unwrap(), mnist_sample(Split::Test).unwrap());
        let out = tempfile::tempdir().unwrap();
        std::fs::write(out.path().join("stale.png"), b"x").unwrap();
        let options = Options { per_class: 1, fashion_names: false, test_limit: Some(1), seed: 0 };
        let err = write_tree(&train, &test, out.path(), &options).unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = write_tree(&train, &test, empty.path(), &Options { per_class: 100_000, ..options }).unwrap_err();
        assert!(err.to_string().contains("fewer than --per-class 100000"), "{err}");
    }
}
