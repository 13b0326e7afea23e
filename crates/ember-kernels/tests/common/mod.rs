//! What the kernel tests share: seeded random inputs, the relative difference they compare
//! kernels with, and a fused activation on candle's ops (the reference for fused kernels). The
//! layer tests use it too (`#[path]`).
#![allow(dead_code)] // each test binary uses what it needs

use candle_core::{DType, Device, Tensor};
use ember_kernels::FusedActivation;
use rand::rngs::StdRng;
use rand::Rng;

/// A tensor of `shape` with values drawn uniformly from `lo..hi`, in `dtype`.
pub fn uniform(shape: &[usize], rng: &mut StdRng, dtype: DType, lo: f64, hi: f64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

/// The largest element-wise difference of `a` from `b`, relative to `b`'s largest magnitude.
pub fn max_rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let a = a.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let b = b.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let scale = b.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
    a.iter().zip(&b).fold(0.0, |m, (x, y)| m.max((x - y).abs() / scale))
}

/// `act` applied to `x` with candle's own ops, the reference a fused activation is checked against.
pub fn candle_activation(x: &Tensor, act: FusedActivation) -> Tensor {
    match act {
        FusedActivation::Identity => x.clone(),
        FusedActivation::Relu => x.relu().unwrap(),
        FusedActivation::Relu6 => x.clamp(0.0, 6.0).unwrap(),
    }
}
