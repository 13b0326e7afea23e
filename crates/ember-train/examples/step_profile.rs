//! Where a training step goes: forward, loss, backward and optimizer time per batch (medians,
//! and the fastest step: on a shared machine other work only ever adds time).
//!
//! `RAYON_NUM_THREADS=2 cargo run --release -p ember-train --example step_profile -- [model] [steps]`
//!
//! The classic CNN (the default) trains on the bundled MNIST sample, batches of 64, 200 steps
//! after 20 warm-up steps. Any other zoo model (`resnet18`, `efficientnet-lite0`, ...) trains on
//! random images of its default input (224 px for those), batches of 16, `steps` steps (default
//! 5) after one warm-up step.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use ember_data::{mnist_sample, Batch, DataLoader, Split};
use ember_layers::{loss, ParamStore};
use ember_optim::{Adam, AdamConfig, Optimizer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    ember_kernels::process::tune_for_training();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().map_or("mnist-cnn", String::as_str);
    let classic = name == "mnist-cnn";
    let steps: usize = args.get(1).map_or(Ok(if classic { 200 } else { 5 }), |s| s.parse())?;
    let (warmup, batch_size) = if classic { (20, 64) } else { (1, 16) };
    let batches: Vec<Batch> = if classic {
        let data = std::sync::Arc::new(mnist_sample(Split::Train)?);
        DataLoader::new(data, batch_size).epoch(0, &Device::Cpu).take(50).collect::<Result<_, _>>()?
    } else {
        let options = ember_zoo::info(name)?.default_options();
        let (c, h, w) = options.input;
        let images = Tensor::randn(0f32, 1., (batch_size, c, h, w), &Device::Cpu)?;
        let labels: Vec<u32> = (0..batch_size as u32).map(|i| i % options.classes as u32).collect();
        vec![Batch { images, labels: Tensor::new(labels, &Device::Cpu)? }]
    };
    let store = ParamStore::new(0, &Device::Cpu);
    let model = ember_zoo::build(name, store.var_builder(DType::F32))?;
    let mut adam = Adam::new(store.vars(), AdamConfig { lr: 1e-3, eps: 1e-7, ..AdamConfig::default() })?;
    let mut phases: [Vec<f64>; 4] = Default::default();
    for step in 0..warmup + steps {
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
        if step >= warmup {
            for (p, (a, b)) in phases.iter_mut().zip([(t0, t1), (t1, t2), (t2, t3), (t3, t4)]) {
                p.push((b - a).as_secs_f64() * 1e3);
            }
        }
    }
    let mut total = 0.0;
    for (name, p) in ["forward", "loss", "backward", "optimizer"].iter().zip(phases.iter_mut()) {
        p.sort_by(f64::total_cmp);
        let median = p[p.len() / 2];
        total += median;
        println!("{name:<10} {median:>8.2} ms  (fastest {:.2})", p[0]);
    }
    println!("{:<10} {total:>8.2} ms  ({:.0} images/s)", "step", batch_size as f64 / total * 1e3);
    Ok(())
}
