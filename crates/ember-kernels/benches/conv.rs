//! Convolution forward + backward: ember's kernels vs candle's op, same run, as ratios.
//!
//! - the classic CNN's second convolution at batch 64 (im2col + GEMM kernel);
//! - every distinct depthwise layer of EfficientNet-Lite0 at 224x224, batch 16 (3x3 and 5x5,
//!   strides 1 and 2), against candle's grouped convolution, which runs one group at a time.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use candle_core::{Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use ember_kernels::{candle_conv2d, conv2d, Conv2dParams};

fn var(shape: &[usize]) -> Var {
    Var::from_tensor(&Tensor::randn(0f32, 1., shape, &Device::Cpu).unwrap()).unwrap()
}

/// (channels, input size, kernel, stride) of EfficientNet-Lite0's depthwise convolutions.
pub const LITE0_DEPTHWISE: [(usize, usize, usize, usize); 9] = [
    (32, 112, 3, 1),
    (96, 112, 3, 2),
    (144, 56, 3, 1),
    (144, 56, 5, 2),
    (240, 28, 5, 1),
    (240, 28, 3, 2),
    (480, 14, 3, 1),
    (480, 14, 5, 1),
    (672, 14, 5, 1),
];

/// The remaining Lite0 shapes (672 at stride 2, 1152 at 7x7) are in the same kernel path; the
/// list above keeps one candle iteration to a few seconds.
fn bench_conv(c: &mut Criterion) {
    let x = var(&[64, 32, 13, 13]);
    let w = var(&[64, 32, 3, 3]);
    let b = var(&[64]);
    let p = Conv2dParams::default();
    let mut group = c.benchmark_group("conv2d_fwd_bwd_64x32x13x13_k3_c64");
    group.sample_size(20);
    group.bench_function("ember", |bench| {
        bench.iter(|| conv2d(&x, &w, Some(&b), p).unwrap().sum_all().unwrap().backward().unwrap())
    });
    group.bench_function("candle", |bench| {
        bench.iter(|| candle_conv2d(&x, &w, Some(&b), p).unwrap().sum_all().unwrap().backward().unwrap())
    });
    group.finish();

    let layers: Vec<(Var, Var, Conv2dParams)> = LITE0_DEPTHWISE
        .iter()
        .map(|&(c, size, k, s)| {
            let p = Conv2dParams { padding: k / 2, stride: s, dilation: 1, groups: c };
            (var(&[16, c, size, size]), var(&[c, 1, k, k]), p)
        })
        .collect();
    let mut group = c.benchmark_group("depthwise_lite0_fwd_bwd_b16");
    group.sample_size(10);
    group.bench_function("ember", |bench| {
        bench.iter(|| {
            for (x, w, p) in &layers {
                conv2d(x, w, None, *p).unwrap().sum_all().unwrap().backward().unwrap();
            }
        })
    });
    group.bench_function("candle", |bench| {
        bench.iter(|| {
            for (x, w, p) in &layers {
                candle_conv2d(x, w, None, *p).unwrap().sum_all().unwrap().backward().unwrap();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_conv);
criterion_main!(benches);
