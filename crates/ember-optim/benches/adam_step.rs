//! One Adam(W) step on 10M parameters: ember's fused in-place update vs candle-nn's `AdamW`,
//! in the same run (compare the two as a ratio).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use candle_core::{Device, Tensor, Var};
use candle_nn::Optimizer as _;
use criterion::{criterion_group, criterion_main, Criterion};
use ember_optim::{Adam, AdamConfig, Optimizer};

const N: usize = 10_000_000;

fn bench_adam(c: &mut Criterion) {
    let dev = Device::Cpu;
    let coef = Tensor::randn(0f32, 1.0, N, &dev).unwrap();
    let mut group = c.benchmark_group("adamw_step_10M_params");
    group.sample_size(20);

    let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, N, &dev).unwrap()).unwrap();
    let grads = (w.as_tensor() * &coef).unwrap().sum_all().unwrap().backward().unwrap();
    let mut ours = Adam::new(vec![("w".into(), w.clone())], AdamConfig::adamw()).unwrap();
    group.bench_function("ember", |b| b.iter(|| ours.step(&grads).unwrap()));

    let w2 = Var::from_tensor(&Tensor::randn(0f32, 1.0, N, &dev).unwrap()).unwrap();
    let grads2 = (w2.as_tensor() * &coef).unwrap().sum_all().unwrap().backward().unwrap();
    let mut theirs = candle_nn::AdamW::new(vec![w2.clone()], candle_nn::ParamsAdamW::default()).unwrap();
    group.bench_function("candle-nn", |b| b.iter(|| theirs.step(&grads2).unwrap()));
    group.finish();
}

criterion_group!(benches, bench_adam);
criterion_main!(benches);
