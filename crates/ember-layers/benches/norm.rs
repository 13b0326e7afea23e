//! Normalisation layers forward + backward in train mode: ember's batch norm against candle-nn's
//! at the classic CNN's size, and against the same arithmetic on candle's ops
//! (`ember_kernels::candle_batch_norm_train`, what the layer ran before its kernel) at a ResNet
//! stage-1 size; group and layer norm.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Module, ModuleT};
use criterion::{criterion_group, criterion_main, Criterion};
use ember_kernels::{candle_batch_norm_train, FusedActivation};
use ember_layers::{BatchNorm, BatchNormConfig, GroupNorm, GroupNormConfig, LayerNorm, LayerNormConfig, ParamStore};

fn bench_norm(c: &mut Criterion) {
    // As the `ember` binary runs (heap reuse, candle's element-wise ops inline).
    ember_kernels::process::tune_for_training();
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
    bench_resnet_batch_norm(c, &store);
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

/// One training step of a ResNet-18 stage-1 batch norm (batch 16, 64 channels, 56x56):
/// forward with batch statistics and running-statistic update, then backward to the input,
/// weight and bias.
fn bench_resnet_batch_norm(c: &mut Criterion, store: &ParamStore) {
    let x = Var::from_tensor(&Tensor::randn(0f32, 1., (16, 64, 56, 56), &Device::Cpu).unwrap()).unwrap();
    let vb = store.var_builder(DType::F32);
    let bn = BatchNorm::new(&BatchNormConfig::new(64), vb.pp("resnet_bn")).unwrap();
    let w = vb.pp("candle_bn").get_with_hints(64, "weight", candle_nn::init::ONE).unwrap();
    let b = vb.pp("candle_bn").get_with_hints(64, "bias", candle_nn::init::ZERO).unwrap();
    let mut group = c.benchmark_group("batch_norm2d_train_step_16x64x56x56");
    group.sample_size(20);
    group.bench_function("ember", |bench| {
        bench.iter(|| bn.forward_t(x.as_tensor(), true).unwrap().sum_all().unwrap().backward().unwrap())
    });
    group.bench_function("candle", |bench| {
        bench.iter(|| {
            let (y, _) =
                candle_batch_norm_train(x.as_tensor(), Some(&w), Some(&b), 1e-5, FusedActivation::Identity).unwrap();
            y.sum_all().unwrap().backward().unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_norm);
criterion_main!(benches);
