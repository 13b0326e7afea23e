//! Per-op forward and backward times of the classic CNN's layers at batch 64 (medians of 50;
//! `EMBER_PROFILE_BATCH` sets another batch size).
//!
//! `RAYON_NUM_THREADS=1 cargo run --release -p ember-train --example op_profile`

use std::time::Instant;

use candle_core::{DType, Device, Result, Tensor, Var};
use ember_kernels::{conv2d_activation_max_pool, linear, Conv2dParams, FusedActivation, Pool2dParams};

fn time(mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut v = Vec::new();
    for i in 0..60 {
        let t = Instant::now();
        f()?;
        if i >= 10 {
            v.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

fn main() -> Result<()> {
    ember_kernels::process::tune_for_training();
    let dev = Device::Cpu;
    let n: usize = std::env::var("EMBER_PROFILE_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let var = |s: &[usize]| Var::from_tensor(&Tensor::randn(0f32, 1., s, &dev)?);
    let x1 = Tensor::randn(0f32, 1., (n, 1, 28, 28), &dev)?;
    let (w1, b1) = (var(&[32, 1, 3, 3])?, var(&[32])?);
    let x2 = var(&[n, 32, 13, 13])?;
    let (w2, b2) = (var(&[64, 32, 3, 3])?, var(&[64])?);
    let x3 = var(&[n, 1600])?;
    let (w3, b3) = (var(&[128, 1600])?, var(&[128])?);
    let p = Conv2dParams::default();
    let pool = Some(Pool2dParams::square(2));
    let relu = FusedActivation::Relu;
    let conv1 = || conv2d_activation_max_pool(&x1, &w1, Some(&b1), p, relu, pool);
    let conv2 = || conv2d_activation_max_pool(&x2, &w2, Some(&b2), p, relu, pool);
    let fc1 = || linear(&x3, &w3, Some(&b3), relu);
    for (name, f) in [("conv1", &conv1 as &dyn Fn() -> Result<Tensor>), ("conv2", &conv2), ("fc1", &fc1)] {
        let fwd = time(|| f().map(|_| ()))?;
        let y = f()?;
        let both = time(|| f()?.sum_all()?.backward().map(|_| ()))?;
        let sum = time(|| y.sum_all()?.backward().map(|_| ()).or(Ok(())))?;
        println!(
            "{name:<6} forward {fwd:>6.2} ms   forward+backward {both:>6.2} ms   (sum+backward harness {sum:.2} ms)"
        );
    }
    let _ = DType::F32;
    Ok(())
}
