//! Pooling layers forward + backward, against candle's op where its backward works.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use candle_core::{Device, Tensor, Var};
use candle_nn::Module;
use criterion::{criterion_group, criterion_main, Criterion};
use ember_layers::{AdaptiveAvgPool2d, AvgPool2d, GlobalAvgPool2d, MaxPool2d};

fn bench_pooling(c: &mut Criterion) {
    let x = Var::from_tensor(&Tensor::randn(0f32, 1., (32, 32, 26, 26), &Device::Cpu).unwrap()).unwrap();
    let run = |m: &dyn Module| m.forward(x.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
    let mut group = c.benchmark_group("avg_pool2d_2x2_fwd_bwd_32x32x26x26");
    group.bench_function("ember", |b| b.iter(|| run(&AvgPool2d::new(2, 2, 0))));
    group.bench_function("candle", |b| {
        b.iter(|| x.as_tensor().avg_pool2d(2).unwrap().sum_all().unwrap().backward().unwrap())
    });
    group.finish();
    let mut group = c.benchmark_group("overlapping_pools_3x3_s2_p1_fwd_bwd_32x32x26x26");
    group.bench_function("ember_avg", |b| b.iter(|| run(&AvgPool2d::new(3, 2, 1))));
    group.bench_function("ember_max", |b| b.iter(|| run(&MaxPool2d::new(3, 2, 1))));
    group.finish();
    let mut group = c.benchmark_group("adaptive_pools_fwd_bwd_32x32x26x26");
    group.bench_function("ember_adaptive_7x7", |b| b.iter(|| run(&AdaptiveAvgPool2d::new((7, 7)))));
    group.bench_function("ember_global", |b| b.iter(|| run(&GlobalAvgPool2d)));
    group.bench_function("candle_mean", |b| {
        b.iter(|| x.as_tensor().mean((2, 3)).unwrap().sum_all().unwrap().backward().unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_pooling);
criterion_main!(benches);
