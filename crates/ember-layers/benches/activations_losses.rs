//! Activations and losses forward + backward, against candle's ops where they exist.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use candle_core::{Device, Tensor, Var};
use candle_nn::Module;
use criterion::{criterion_group, criterion_main, Criterion};
use ember_layers::loss::{self, Reduction};
use ember_layers::Activation;

fn bench_activations(c: &mut Criterion) {
    let x = Var::from_tensor(&Tensor::randn(0f32, 1., (64, 32, 26, 26), &Device::Cpu).unwrap()).unwrap();
    let run = |t: Tensor| t.sum_all().unwrap().backward().unwrap();
    let mut group = c.benchmark_group("activations_fwd_bwd_64x32x26x26");
    for (name, act) in [("relu", Activation::Relu), ("gelu", Activation::Gelu), ("silu", Activation::Silu)] {
        group.bench_function(format!("ember_{name}"), |b| b.iter(|| run(act.forward(x.as_tensor()).unwrap())));
    }
    group.bench_function("candle_relu", |b| b.iter(|| run(x.as_tensor().relu().unwrap())));
    group.bench_function("candle_gelu_erf", |b| b.iter(|| run(x.as_tensor().gelu_erf().unwrap())));
    group.finish();

    let logits = Var::from_tensor(&Tensor::randn(0f32, 1., (256, 100), &Device::Cpu).unwrap()).unwrap();
    let targets = Tensor::arange(0u32, 256, &Device::Cpu).unwrap().affine(1.0, 0.0).unwrap();
    let targets = (targets.to_dtype(candle_core::DType::F32).unwrap() / 2.56)
        .unwrap()
        .floor()
        .unwrap()
        .to_dtype(candle_core::DType::U32)
        .unwrap();
    let mut group = c.benchmark_group("losses_fwd_bwd_256x100");
    group.bench_function("ember_cross_entropy", |b| {
        b.iter(|| run(loss::cross_entropy(logits.as_tensor(), &targets).unwrap()))
    });
    group.bench_function("candle_cross_entropy", |b| {
        b.iter(|| run(candle_nn::loss::cross_entropy(logits.as_tensor(), &targets).unwrap()))
    });
    let y = logits.as_tensor().detach().affine(0.5, 0.1).unwrap();
    group.bench_function("ember_mse", |b| b.iter(|| run(loss::mse(logits.as_tensor(), &y, Reduction::Mean).unwrap())));
    group.bench_function("candle_mse", |b| b.iter(|| run(candle_nn::loss::mse(logits.as_tensor(), &y).unwrap())));
    group.finish();
}

criterion_group!(benches, bench_activations);
criterion_main!(benches);
