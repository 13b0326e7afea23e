//! Max pooling forward + backward: ember's kernel vs candle's op, same run, as a ratio.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use candle_core::{Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use ember_kernels::{max_pool2d, Pool2dParams};

fn bench_max_pool(c: &mut Criterion) {
    // The classic CNN's first pooling layer at batch 64.
    let x = Var::from_tensor(&Tensor::randn(0f32, 1., (64, 32, 26, 26), &Device::Cpu).unwrap()).unwrap();
    let mut group = c.benchmark_group("max_pool2d_fwd_bwd_64x32x26x26");
    group.bench_function("ember", |b| {
        b.iter(|| {
            let y = max_pool2d(x.as_tensor(), Pool2dParams::square(2)).unwrap();
            y.sum_all().unwrap().backward().unwrap()
        })
    });
    group.bench_function("candle", |b| {
        b.iter(|| {
            let y = x.as_tensor().max_pool2d(2).unwrap();
            y.sum_all().unwrap().backward().unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_max_pool);
criterion_main!(benches);
