//! Can the image-folder loader keep up with ResNet-18 training at 224 px? Loader throughput
//! (`ImageFolder` of ~500x375 JPEGs, RGB, `resized-crop:224,hflip`, 2 workers, JPEG decoding
//! included) against ResNet-18's training throughput (3x224x224, 10 classes, batch 16, Adam),
//! both in images/s, in the same run. The bar: the loader at least 3x the training.
//!
//! The folder is written once into a temporary directory: 256 JPEGs (quality 90) in 4 classes,
//! each a seeded crop of a real photo in `$EMBER_SHARED_DIR/images/*.png` resized to 500x375
//! (ImageNet's typical size), or of a synthetic textured image when that is not set. The files
//! are in the page cache after the warm-up, so disk speed is not measured, decoding is.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use candle_core::{DType, Device};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use ember_augment::Pipeline;
use ember_data::{ColorMode, DataLoader, Dataset, ImageFolder, ImageFolderOptions};
use ember_layers::{loss, ParamStore};
use ember_optim::{Adam, AdamConfig, Optimizer};
use ember_zoo::ModelOptions;
use image::imageops::FilterType;
use image::RgbImage;

const FILES: usize = 256;
const CLASSES: usize = 4;
const BATCH: usize = 16;
const PHOTO: (u32, u32) = (500, 375);

/// A deterministic 64-bit mix (splitmix64), so the crops need no RNG crate.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A fraction in `[lo, hi)` drawn from `key`.
fn uniform(key: u64, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * (mix(key) >> 11) as f64 / (1u64 << 53) as f64
}

/// The real photos in `$EMBER_SHARED_DIR/images`, or two synthetic textured images.
fn sources() -> (Vec<RgbImage>, String) {
    if let Some(dir) = std::env::var_os("EMBER_SHARED_DIR").map(|d| PathBuf::from(d).join("images")) {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "png"))
            .collect();
        paths.sort();
        let photos: Vec<RgbImage> = paths.iter().map(|p| image::open(p).unwrap().to_rgb8()).collect();
        if !photos.is_empty() {
            let names: Vec<String> =
                paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
            return (photos, format!("crops of {}", names.join(", ")));
        }
    }
    // Stripes, a gradient and pixel noise: JPEG cannot compress it to nothing, like a photo.
    let synthetic = |seed: u64| {
        RgbImage::from_fn(640, 480, |x, y| {
            let n = mix(seed ^ (u64::from(y) << 20) ^ u64::from(x)) as u8 / 4;
            let wave = ((f64::from(x) * 0.07 + f64::from(y) * 0.03 + seed as f64).sin() * 80.0 + 100.0) as u8;
            image::Rgb([wave.wrapping_add(n), (x / 3) as u8 ^ n, (y / 2) as u8 + n / 2])
        })
    };
    (vec![synthetic(1), synthetic(2)], "synthetic textures (set EMBER_SHARED_DIR for real photos)".into())
}

/// Writes `FILES` JPEGs of `PHOTO` size into `root/class_<k>/`.
fn write_folder(root: &Path) -> String {
    let (photos, what) = sources();
    for k in 0..CLASSES {
        std::fs::create_dir_all(root.join(format!("class_{k}"))).unwrap();
    }
    let aspect = f64::from(PHOTO.0) / f64::from(PHOTO.1);
    for i in 0..FILES {
        let photo = &photos[i % photos.len()];
        let (pw, ph) = (f64::from(photo.width()), f64::from(photo.height()));
        // The largest 4:3 window that fits, scaled by 0.5..1, at a seeded position.
        let full_w = pw.min(ph * aspect);
        let w = full_w * uniform(3 * i as u64, 0.5, 1.0);
        let h = w / aspect;
        let x = uniform(3 * i as u64 + 1, 0.0, pw - w);
        let y = uniform(3 * i as u64 + 2, 0.0, ph - h);
        let crop = image::imageops::crop_imm(photo, x as u32, y as u32, w as u32, h as u32).to_image();
        let resized = image::imageops::resize(&crop, PHOTO.0, PHOTO.1, FilterType::Triangle);
        let path = root.join(format!("class_{}", i % CLASSES)).join(format!("{i:04}.jpg"));
        let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        resized.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(file, 90)).unwrap();
    }
    what
}

fn bench(c: &mut Criterion) {
    ember_kernels::process::tune_for_training();
    let dir = tempfile::tempdir().unwrap();
    let what = write_folder(dir.path());
    let bytes: u64 = walk_bytes(dir.path());
    eprintln!(
        "folder_loader_vs_resnet: {FILES} JPEGs {}x{} ({:.0} KB on average), {what}",
        PHOTO.0,
        PHOTO.1,
        bytes as f64 / FILES as f64 / 1024.0
    );
    let folder =
        ImageFolder::open(dir.path(), ImageFolderOptions { color: ColorMode::Rgb, ..ImageFolderOptions::default() })
            .unwrap();
    assert_eq!((folder.len(), folder.classes()), (FILES, CLASSES));
    let data: Arc<dyn Dataset> = Arc::new(folder);
    let transform = Arc::new(Pipeline::parse("resized-crop:224,hflip").unwrap());
    let loader =
        DataLoader::new(data, BATCH).with_shuffle(0).with_rgb_transform(transform).with_workers(2).with_prefetch(4);

    let mut group = c.benchmark_group("folder_loader_vs_resnet18");
    // Each iteration is long (an epoch of the folder; one ResNet-18 step): one iteration per
    // sample, ten samples, no time budget to stretch.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_millis(1));

    group.throughput(Throughput::Elements(FILES as u64));
    let mut epoch = 0;
    group.bench_function("loader_jpeg_resized_crop_224_hflip_2_workers", |b| {
        b.iter(|| {
            epoch += 1;
            let n: usize = loader.epoch(epoch, &Device::Cpu).map(|b| b.unwrap().labels.dims1().unwrap()).sum();
            assert_eq!(n, FILES);
        })
    });

    // Training batches are the loader's own (real crops), made before the clock starts.
    let batches: Vec<_> = loader.epoch(0, &Device::Cpu).take(2).map(|b| b.unwrap()).collect();
    assert_eq!(batches[0].images.dims(), &[BATCH, 3, 224, 224]);
    let store = ParamStore::new(0, &Device::Cpu);
    let model = ember_zoo::build_with("resnet18", &ModelOptions::new((3, 224, 224), 10), store.var_builder(DType::F32))
        .unwrap();
    let mut adam = Adam::new(store.vars(), AdamConfig::default()).unwrap();
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut step = 0;
    group.bench_function("resnet18_training_224_batch16_adam", |b| {
        b.iter(|| {
            let batch = &batches[step % batches.len()];
            step += 1;
            let logits = candle_nn::ModuleT::forward_t(&model, &batch.images, true).unwrap();
            let loss = loss::cross_entropy(&logits, &batch.labels).unwrap();
            adam.step(&loss.backward().unwrap()).unwrap();
        })
    });
    group.finish();
}

fn walk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| if e.path().is_dir() { walk_bytes(&e.path()) } else { e.metadata().map_or(0, |m| m.len()) })
        .sum()
}

criterion_group!(benches, bench);
criterion_main!(benches);
