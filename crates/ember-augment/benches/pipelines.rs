//! Per-sample augmentation throughput: the MNIST pipeline (28x28 grey, pad-crop, flip,
//! normalise to CHW f32) and the ImageNet pipeline (256x256 RGB, random resized crop 224, flip,
//! colour jitter, normalise). `benches/torchvision_bench.py` times the same pipelines in
//! torchvision; run both with one thread (`RAYON_NUM_THREADS=1`, `torch.set_num_threads(1)`).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ember_augment::{
    sample_rng, ColorJitter, Image, Normalize, RandomCrop, RandomHorizontalFlip, RandomResizedCrop, SamplePixel,
    ToTensor, Transform,
};
use image::{GrayImage, Luma, Rgb, RgbImage};
use rand::rngs::StdRng;

/// The same synthetic images as `torchvision_bench.py`.
fn digit() -> GrayImage {
    GrayImage::from_fn(28, 28, |x, y| Luma([((x * 7 + y * 13) % 256) as u8]))
}

fn photo() -> RgbImage {
    RgbImage::from_fn(256, 256, |x, y| Rgb([((x + y) % 256) as u8, ((x * 3) % 256) as u8, ((y * 5) % 256) as u8]))
}

/// Times one sample through `augment` (given the sample's RNG, a fresh `(0, 0, index)` one each
/// time) then `to_tensor`'s normalised CHW values, as the benchmark `name`.
fn bench_pipeline<P: SamplePixel>(
    c: &mut Criterion,
    name: &str,
    img: Image<P>,
    augment: impl Fn(Image<P>, &mut StdRng) -> Image<P>,
    to_tensor: &ToTensor,
) {
    let mut out = Vec::with_capacity(img.as_raw().len());
    let mut index = 0u64;
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    group.bench_function("ember", |b| {
        b.iter(|| {
            index += 1;
            let x = augment(img.clone(), &mut sample_rng(0, 0, index));
            out.clear();
            to_tensor.extend_chw(&x, &mut out).unwrap();
            out[0]
        })
    });
    group.finish();
}

fn bench_mnist(c: &mut Criterion) {
    let crop = RandomCrop::new(28, 28).with_padding(4);
    let flip = RandomHorizontalFlip::new(0.5).unwrap();
    let to_tensor = ToTensor::new().with_normalize(Normalize::new(&[0.1307], &[0.3081]).unwrap());
    let augment = |img, rng: &mut StdRng| flip.apply(crop.apply(img, rng).unwrap(), rng).unwrap();
    bench_pipeline(c, "mnist_28x28_padcrop_flip_normalize", digit(), augment, &to_tensor);
}

fn bench_imagenet(c: &mut Criterion) {
    let rrc = RandomResizedCrop::new(224, 224).unwrap();
    let flip = RandomHorizontalFlip::new(0.5).unwrap();
    let jitter = ColorJitter::new(0.4, 0.4, 0.4, 0.1).unwrap();
    let to_tensor = ToTensor::new().with_normalize(Normalize::imagenet());
    let augment = |img, rng: &mut StdRng| {
        let x = rrc.apply(img, rng).unwrap();
        jitter.apply(flip.apply(x, rng).unwrap(), rng).unwrap()
    };
    bench_pipeline(c, "imagenet_224_rrc_flip_jitter_normalize", photo(), augment, &to_tensor);
}

criterion_group!(benches, bench_mnist, bench_imagenet);
criterion_main!(benches);
