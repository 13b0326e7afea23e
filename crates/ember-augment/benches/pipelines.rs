//! Per-sample augmentation throughput: the MNIST pipeline (28x28 grey, pad-crop, flip,
//! normalise to CHW f32) and the ImageNet pipeline (256x256 RGB, random resized crop 224, flip,
//! colour jitter, normalise). `benches/torchvision_bench.py` times the same pipelines in
//! torchvision; run both with one thread (`RAYON_NUM_THREADS=1`, `torch.set_num_threads(1)`).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ember_augment::{
    sample_rng, ColorJitter, Normalize, RandomCrop, RandomHorizontalFlip, RandomResizedCrop, ToTensor, Transform,
};
use image::{GrayImage, Luma, Rgb, RgbImage};

/// The same synthetic images as `torchvision_bench.py`.
fn digit() -> GrayImage {
    GrayImage::from_fn(28, 28, |x, y| Luma([((x * 7 + y * 13) % 256) as u8]))
}

fn photo() -> RgbImage {
    RgbImage::from_fn(256, 256, |x, y| Rgb([((x + y) % 256) as u8, ((x * 3) % 256) as u8, ((y * 5) % 256) as u8]))
}

fn bench_mnist(c: &mut Criterion) {
    let crop = RandomCrop::new(28, 28).with_padding(4);
    let flip = RandomHorizontalFlip::new(0.5).unwrap();
    let to_tensor = ToTensor::new().with_normalize(Normalize::new(&[0.1307], &[0.3081]).unwrap());
    let img = digit();
    let mut out = Vec::with_capacity(28 * 28);
    let mut index = 0u64;
    let mut group = c.benchmark_group("mnist_28x28_padcrop_flip_normalize");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ember", |b| {
        b.iter(|| {
            index += 1;
            let rng = &mut sample_rng(0, 0, index);
            let x = flip.apply(crop.apply(img.clone(), rng).unwrap(), rng).unwrap();
            out.clear();
            to_tensor.extend_chw(&x, &mut out).unwrap();
            out[0]
        })
    });
    group.finish();
}

fn bench_imagenet(c: &mut Criterion) {
    let rrc = RandomResizedCrop::new(224, 224).unwrap();
    let flip = RandomHorizontalFlip::new(0.5).unwrap();
    let jitter = ColorJitter::new(0.4, 0.4, 0.4, 0.1).unwrap();
    let to_tensor = ToTensor::new().with_normalize(Normalize::imagenet());
    let img = photo();
    let mut out = Vec::with_capacity(3 * 224 * 224);
    let mut index = 0u64;
    let mut group = c.benchmark_group("imagenet_224_rrc_flip_jitter_normalize");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ember", |b| {
        b.iter(|| {
            index += 1;
            let rng = &mut sample_rng(0, 0, index);
            let x = rrc.apply(img.clone(), rng).unwrap();
            let x = jitter.apply(flip.apply(x, rng).unwrap(), rng).unwrap();
            out.clear();
            to_tensor.extend_chw(&x, &mut out).unwrap();
            out[0]
        })
    });
    group.finish();
}

criterion_group!(benches, bench_mnist, bench_imagenet);
criterion_main!(benches);
