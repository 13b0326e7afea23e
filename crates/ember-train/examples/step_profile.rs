//! Where a training step of the classic CNN goes: forward, loss, backward and optimizer time
//! per batch of 64 (medians over 200 steps after 20 warm-up steps), on the bundled MNIST sample.
//!
//! `RAYON_NUM_THREADS=2 cargo run --release -p ember-train --example step_profile`

use std::time::Instant;

use candle_core::{DType, Device};
use ember_data::{mnist_sample, DataLoader, Split};
use ember_layers::{loss, ParamStore};
use ember_optim::{Adam, AdamConfig, Optimizer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    ember_kernels::process::tune_for_training();
    let data = std::sync::Arc::new(mnist_sample(Split::Train)?);
    let batches: Vec<_> = DataLoader::new(data, 64).epoch(0, &Device::Cpu).take(50).collect::<Result<_, _>>()?;
    let store = ParamStore::new(0, &Device::Cpu);
    let model = ember_zoo::build("mnist-cnn", store.var_builder(DType::F32))?;
    let mut adam = Adam::new(store.vars(), AdamConfig { lr: 1e-3, eps: 1e-7, ..AdamConfig::default() })?;
    let mut phases: [Vec<f64>; 4] = Default::default();
    for step in 0..220 {
        let batch = &batches[step % batches.len()];
        let t0 = Instant::now();
        let logits = model.forward_t(&batch.images, true)?;
        let t1 = Instant::now();
        let loss = loss::cross_entropy(&logits, &batch.labels)?;
        let t2 = Instant::now();
        let grads = loss.backward()?;
        let t3 = Instant::now();
        adam.step(&grads)?;
        drop(grads);
        let t4 = Instant::now();
        if step >= 20 {
            for (p, (a, b)) in phases.iter_mut().zip([(t0, t1), (t1, t2), (t2, t3), (t3, t4)]) {
                p.push((b - a).as_secs_f64() * 1e3);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let names = ["forward", "loss", "backward", "optimizer"];
    let mut total = 0.0;
    for (name, p) in names.iter().zip(phases.iter_mut()) {
        let m = median(p);
        total += m;
        println!("{name:<10} {m:>7.2} ms");
    }
    println!("{:<10} {total:>7.2} ms  ({:.0} images/s)", "step", 64.0 / total * 1e3);
    Ok(())
}
