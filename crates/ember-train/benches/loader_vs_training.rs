//! Can the data loader keep up with training? Loader throughput (Fashion-MNIST, random
//! horizontal flip + pad-2 random crop, 2 workers) against the classic CNN's training
//! throughput (batch 64, Adam), both in images/s, in the same run.
//!
//! Reads Fashion-MNIST from `$EMBER_SHARED_DIR/data/fashion-mnist` or
//! `$EMBER_DATA_DIR/fashion-mnist`; falls back to the bundled MNIST sample (same image size).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ember_augment::Pipeline;
use ember_data::{load_mnist_family, mnist_sample, DataLoader, LabelledImages, Split};
use ember_layers::{loss, ParamStore};
use ember_optim::{Adam, AdamConfig, Optimizer};

fn fashion() -> (LabelledImages, &'static str) {
    let dirs = [
        std::env::var_os("EMBER_SHARED_DIR").map(|d| PathBuf::from(d).join("data/fashion-mnist")),
        std::env::var_os("EMBER_DATA_DIR").map(|d| PathBuf::from(d).join("fashion-mnist")),
    ];
    for dir in dirs.into_iter().flatten() {
        if let Ok(set) = load_mnist_family(&dir, Split::Train) {
            return (set, "fashion-mnist");
        }
    }
    (mnist_sample(Split::Train).unwrap(), "mnist-sample (set EMBER_SHARED_DIR for Fashion-MNIST)")
}

const BATCHES: usize = 50;
const BATCH: usize = 64;

fn bench(c: &mut Criterion) {
    let (data, name) = fashion();
    eprintln!("loader_vs_training: data = {name}");
    let data = Arc::new(data);
    let transform = Arc::new(Pipeline::parse("hflip,pad-crop:2").unwrap());
    let loader =
        DataLoader::new(data.clone(), BATCH).with_shuffle(0).with_transform(transform).with_workers(2).with_prefetch(4);

    let mut group = c.benchmark_group("images_per_s");
    group.sample_size(10);
    group.throughput(Throughput::Elements((BATCHES * BATCH) as u64));
    let mut epoch = 0;
    group.bench_function("loader_flip_crop_2_workers", |b| {
        b.iter(|| {
            epoch += 1;
            let n: usize =
                loader.epoch(epoch, &Device::Cpu).take(BATCHES).map(|b| b.unwrap().labels.dims1().unwrap()).sum();
            assert_eq!(n, BATCHES * BATCH);
        })
    });

    let store = ParamStore::new(0, &Device::Cpu);
    let model = ember_zoo::build("mnist-cnn", store.var_builder(DType::F32)).unwrap();
    let mut adam = Adam::new(store.vars(), AdamConfig::default()).unwrap();
    let batches: Vec<_> =
        DataLoader::new(data, BATCH).epoch(0, &Device::Cpu).take(BATCHES).map(|b| b.unwrap()).collect();
    group.sample_size(10);
    group.bench_function("cnn_training", |b| {
        b.iter(|| {
            for batch in &batches {
                let logits = model.forward_t(&batch.images, true).unwrap();
                let loss = loss::cross_entropy(&logits, &batch.labels).unwrap();
                adam.step(&loss.backward().unwrap()).unwrap();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
