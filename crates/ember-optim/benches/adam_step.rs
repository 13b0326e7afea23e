//! One Adam(W) step on 10M parameters: ember's fused in-place update, ember's tensor-op path
//! (what parameters off the CPU take) and candle-nn's `AdamW`, in the same run (compare them
//! as ratios).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use candle_core::{Device, Tensor, Var};
use candle_nn::Optimizer as _;
use criterion::{criterion_group, criterion_main, Criterion};
use ember_optim::{Adam, AdamConfig, Optimizer, ParamGroup, UpdatePath};

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

    let w3 = Var::from_tensor(&Tensor::randn(0f32, 1.0, N, &dev).unwrap()).unwrap();
    let grads3 = (w3.as_tensor() * &coef).unwrap().sum_all().unwrap().backward().unwrap();
    let groups = vec![ParamGroup::all(vec![("w".into(), w3.clone())])];
    let mut tensor_ops = Adam::with_update_path(groups, AdamConfig::adamw(), UpdatePath::TensorOps).unwrap();
    group.bench_function("ember-tensor-ops", |b| b.iter(|| tensor_ops.step(&grads3).unwrap()));

    let w2 = Var::from_tensor(&Tensor::randn(0f32, 1.0, N, &dev).unwrap()).unwrap();
    let grads2 = (w2.as_tensor() * &coef).unwrap().sum_all().unwrap().backward().unwrap();
    let mut theirs = candle_nn::AdamW::new(vec![w2.clone()], candle_nn::ParamsAdamW::default()).unwrap();
    group.bench_function("candle-nn", |b| b.iter(|| theirs.step(&grads2).unwrap()));
    group.finish();
}

criterion_group!(benches, bench_adam);
criterion_main!(benches);
