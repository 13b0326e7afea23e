//! Normalisation layers forward + backward in train mode, against candle-nn's batch norm.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Module, ModuleT};
use criterion::{criterion_group, criterion_main, Criterion};
use ember_layers::{BatchNorm, BatchNormConfig, GroupNorm, GroupNormConfig, LayerNorm, LayerNormConfig, ParamStore};

fn bench_norm(c: &mut Criterion) {
    let x = Var::from_tensor(&Tensor::randn(0f32, 1., (32, 32, 26, 26), &Device::Cpu).unwrap()).unwrap();
    let store = ParamStore::new(0, &Device::Cpu);
    let vb = store.var_builder(DType::F32);
    let bn = BatchNorm::new(&BatchNormConfig::new(32), vb.pp("ours")).unwrap();
    let theirs = candle_nn::batch_norm(32, candle_nn::BatchNormConfig::default(), vb.pp("candle")).unwrap();
    let mut group = c.benchmark_group("batch_norm2d_train_fwd_bwd_32x32x26x26");
    group.bench_function("ember", |b| {
        b.iter(|| bn.forward_t(x.as_tensor(), true).unwrap().sum_all().unwrap().backward().unwrap())
    });
    group.bench_function("candle", |b| {
        b.iter(|| theirs.forward_t(x.as_tensor(), true).unwrap().sum_all().unwrap().backward().unwrap())
    });
    group.finish();
    let gn = GroupNorm::new(&GroupNormConfig::new(8, 32), vb.pp("gn")).unwrap();
    let ln = LayerNorm::new(&LayerNormConfig::new(&[26, 26]), vb.pp("ln")).unwrap();
    let mut group = c.benchmark_group("group_layer_norm_fwd_bwd_32x32x26x26");
    group.bench_function("ember_group_norm", |b| {
        b.iter(|| gn.forward(x.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap())
    });
    group.bench_function("ember_layer_norm", |b| {
        b.iter(|| ln.forward(x.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_norm);
criterion_main!(benches);
