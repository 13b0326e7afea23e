//! Does LoRA cost a rebuild per step? One training step (forward, backward, AdamW) of
//! EfficientNet-Lite0 at 224 px, batch 4, 10 classes: with rank-8 LoRA adapters on every
//! convolution and the head (`ember`: the base frozen, adapters and head training, batch norms
//! on batch statistics as in plain fine-tuning), against plain fine-tuning of every parameter
//! (`full_fine_tune`), in the same run. The bar (issue 17): the LoRA step within 1.3x of the
//! plain one; `cargo xtask bench` prints the ratio. `lora_frozen_batch_norms` is LoRA's
//! default recipe (batch norms on their running statistics), for reference.
//!
//! Weights are random: speed does not depend on their values.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::time::Duration;

use candle_core::{Device, Tensor};
use candle_nn::ModuleT;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use ember_finetune::{FineTuneModel, LoraConfig, LoraModel};
use ember_layers::loss::cross_entropy;
use ember_optim::{Adam, AdamConfig, Optimizer, ParamGroup};
use ember_zoo::ModelOptions;

const BATCH: usize = 4;
const CLASSES: usize = 10;

fn model() -> FineTuneModel {
    FineTuneModel::scratch("efficientnet-lite0", &ModelOptions::new((3, 224, 224), CLASSES), 0).unwrap()
}

fn step(model: &dyn ModuleT, opt: &mut Adam, xs: &Tensor, ys: &Tensor) {
    let loss = cross_entropy(&model.forward_t(xs, true).unwrap(), ys).unwrap();
    opt.step(&loss.backward().unwrap()).unwrap();
}

fn bench_lora_step(c: &mut Criterion) {
    let xs = Tensor::randn(0f32, 1.0, (BATCH, 3, 224, 224), &Device::Cpu).unwrap();
    let ys = Tensor::new(&[1u32, 3, 5, 7], &Device::Cpu).unwrap();
    let adamw = |params| Adam::with_groups(vec![ParamGroup::all(params)], AdamConfig::adamw()).unwrap();

    let mut group = c.benchmark_group("lora_vs_full_fine_tune_step_lite0_224");
    group.sampling_mode(SamplingMode::Flat).sample_size(10).warm_up_time(Duration::from_secs(1));

    let plain = model();
    let mut opt = adamw(plain.store.vars());
    group.bench_function("full_fine_tune", |b| b.iter(|| step(&plain, &mut opt, &xs, &ys)));
    drop(plain);

    for (name, frozen_batch_norms) in [("ember", false), ("lora_frozen_batch_norms", true)] {
        let base = model();
        let head = base.head.pattern();
        let cfg = LoraConfig { train_also: vec![head], frozen_batch_norms, ..LoraConfig::new(8, &["*"]) };
        let lora = LoraModel::new(base, cfg).unwrap();
        let mut opt = adamw(lora.trainable());
        group.bench_function(name, |b| b.iter(|| step(&lora, &mut opt, &xs, &ys)));
    }
    group.finish();
}

criterion_group!(benches, bench_lora_step);
criterion_main!(benches);
