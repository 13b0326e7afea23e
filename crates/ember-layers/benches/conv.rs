//! Convolution layers forward + backward, against candle's own conv2d where one exists.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Module;
use criterion::{criterion_group, criterion_main, Criterion};
use ember_kernels::Conv2dParams;
use ember_layers::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, ParamStore};

fn bench_conv(c: &mut Criterion) {
    let x = Var::from_tensor(&Tensor::randn(0f32, 1., (16, 32, 28, 28), &Device::Cpu).unwrap()).unwrap();
    for (name, groups) in [("dense", 1), ("grouped4", 4), ("depthwise", 32)] {
        let store = ParamStore::new(0, &Device::Cpu);
        let cfg = Conv2dConfig {
            params: Conv2dParams { padding: 1, groups, ..Default::default() },
            ..Conv2dConfig::new(32, 32, 3)
        };
        let conv = Conv2d::new(&cfg, store.var_builder(DType::F32)).unwrap();
        let w = store.get("weight").unwrap();
        let mut group = c.benchmark_group(format!("conv2d_{name}_fwd_bwd_16x32x28x28"));
        group.bench_function("ember", |b| {
            b.iter(|| conv.forward(x.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap())
        });
        group.bench_function("candle", |b| {
            b.iter(|| {
                x.as_tensor().conv2d(w.as_tensor(), 1, 1, 1, groups).unwrap().sum_all().unwrap().backward().unwrap()
            })
        });
        group.finish();
    }
    let x1 = Var::from_tensor(&Tensor::randn(0f32, 1., (16, 32, 256), &Device::Cpu).unwrap()).unwrap();
    let store = ParamStore::new(0, &Device::Cpu);
    let conv1 = Conv1d::new(&Conv1dConfig::new(32, 32, 5), store.var_builder(DType::F32)).unwrap();
    let w1 = store.get("weight").unwrap();
    let mut group = c.benchmark_group("conv1d_fwd_bwd_16x32x256");
    group.bench_function("ember", |b| {
        b.iter(|| conv1.forward(x1.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap())
    });
    group.bench_function("candle", |b| {
        b.iter(|| x1.as_tensor().conv1d(w1.as_tensor(), 0, 1, 1, 1).unwrap().sum_all().unwrap().backward().unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_conv);
criterion_main!(benches);
