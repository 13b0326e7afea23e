//! End-to-end: the classic CNN (conv32-relu-pool-conv64-relu-pool-fc128-relu-fc10, Adam lr 1e-3
//! eps 1e-7, batch 64, f32) trained and run on Fashion-MNIST by ember and by a plain candle-nn
//! implementation of the same network, interleaved in one run (`ROUNDS` rounds, medians).
//!
//! Training: 20 warm-up batches, then `EMBER_BENCH_BATCHES` (default 300) timed batches.
//! Inference: the 10,000 test images at batch 1,000, median of 3 passes.
//! With `EMBER_BENCH_EPOCH=1`, each stack also trains one full epoch from the same initial
//! weights and data order and reports its test accuracy.
//! `EMBER_BENCH_ONLY=ember` (or `candle-nn`) runs one stack only (for profiling).
//! Writes `classic_cnn.json` to `$EMBER_BENCH_OUT` when set (`cargo xtask bench` sets it).
//!
//! The process is tuned as the `ember` CLI tunes itself (`ember_kernels::process`); both stacks
//! share that.
//!
//! Data: `$EMBER_SHARED_DIR/data/fashion-mnist` or `$EMBER_DATA_DIR/fashion-mnist`; without
//! either, the bundled MNIST sample (same image size) so the benchmark always runs.
#![allow(missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device, Module, ModuleT, Result, Tensor, D};
use candle_nn::{Optimizer as _, VarBuilder, VarMap};
use ember_data::{load_mnist_family, mnist_sample, DataLoader, LabelledImages, Split};
use ember_layers::{loss, ParamStore};
use ember_optim::{Adam, AdamConfig, Optimizer};
use ember_train::throughput::{inference_images_per_s, training_images_per_s, ThroughputConfig};

const BATCH: usize = 64;
const ROUNDS: usize = 3;

fn data(split: Split) -> (LabelledImages, &'static str) {
    let dirs = [
        std::env::var_os("EMBER_SHARED_DIR").map(|d| PathBuf::from(d).join("data/fashion-mnist")),
        std::env::var_os("EMBER_DATA_DIR").map(|d| PathBuf::from(d).join("fashion-mnist")),
    ];
    for dir in dirs.into_iter().flatten() {
        if let Ok(set) = load_mnist_family(&dir, split) {
            return (set, "fashion-mnist");
        }
    }
    (mnist_sample(split).unwrap(), "mnist-sample (set EMBER_SHARED_DIR for Fashion-MNIST)")
}

fn batches(set: LabelledImages, size: usize, shuffle: Option<u64>) -> Vec<(Tensor, Tensor)> {
    let mut loader = DataLoader::new(Arc::new(set), size);
    if let Some(seed) = shuffle {
        loader = loader.with_shuffle(seed);
    }
    loader.epoch(0, &Device::Cpu).map(|b| b.map(|b| (b.images, b.labels)).unwrap()).collect()
}

/// The classic CNN written with plain candle-nn layers and ops.
struct CandleCnn {
    conv1: candle_nn::Conv2d,
    conv2: candle_nn::Conv2d,
    fc1: candle_nn::Linear,
    fc2: candle_nn::Linear,
}

impl CandleCnn {
    fn new(vb: VarBuilder) -> Result<Self> {
        let cfg = candle_nn::Conv2dConfig::default();
        Ok(Self {
            conv1: candle_nn::conv2d(1, 32, 3, cfg, vb.pp("conv1"))?,
            conv2: candle_nn::conv2d(32, 64, 3, cfg, vb.pp("conv2"))?,
            fc1: candle_nn::linear(64 * 5 * 5, 128, vb.pp("fc1"))?,
            fc2: candle_nn::linear(128, 10, vb.pp("fc2"))?,
        })
    }
}

impl Module for CandleCnn {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let x = xs.apply(&self.conv1)?.relu()?.max_pool2d(2)?;
        let x = x.apply(&self.conv2)?.relu()?.max_pool2d(2)?;
        x.flatten_from(1)?.apply(&self.fc1)?.relu()?.apply(&self.fc2)
    }
}

/// One stack: a training step and an inference forward.
trait Stack {
    fn name(&self) -> &'static str;
    fn step(&mut self, x: &Tensor, y: &Tensor) -> Result<()>;
    fn infer(&self, x: &Tensor) -> Result<Tensor>;
}

struct Ember {
    model: Box<dyn ModuleT>,
    adam: Adam,
}

impl Ember {
    fn new(seed: u64) -> Self {
        let store = ParamStore::new(seed, &Device::Cpu);
        let model = ember_zoo::build("mnist-cnn", store.var_builder(DType::F32)).unwrap();
        let adam = Adam::new(store.vars(), AdamConfig { lr: 1e-3, eps: 1e-7, ..AdamConfig::default() }).unwrap();
        Self { model, adam }
    }
}

impl Stack for Ember {
    fn name(&self) -> &'static str {
        "ember"
    }
    fn step(&mut self, x: &Tensor, y: &Tensor) -> Result<()> {
        let loss = loss::cross_entropy(&self.model.forward_t(x, true)?, y)?;
        self.adam.step(&loss.backward()?)
    }
    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        self.model.forward_t(x, false)
    }
}

struct Candle {
    model: CandleCnn,
    adam: candle_nn::AdamW,
}

impl Candle {
    fn new() -> Self {
        let varmap = VarMap::new();
        let model = CandleCnn::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
        let params = candle_nn::ParamsAdamW { lr: 1e-3, eps: 1e-7, weight_decay: 0.0, ..Default::default() };
        let adam = candle_nn::AdamW::new(varmap.all_vars(), params).unwrap();
        Self { model, adam }
    }
}

impl Stack for Candle {
    fn name(&self) -> &'static str {
        "candle-nn"
    }
    fn step(&mut self, x: &Tensor, y: &Tensor) -> Result<()> {
        let loss = candle_nn::loss::cross_entropy(&self.model.forward(x)?, y)?;
        self.adam.backward_step(&loss)
    }
    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        self.model.forward(x)
    }
}

fn accuracy(stack: &dyn Stack, test: &[(Tensor, Tensor)]) -> f64 {
    let (mut right, mut total) = (0usize, 0usize);
    for (x, y) in test {
        let pred = stack.infer(x).unwrap().argmax(D::Minus1).unwrap();
        right +=
            pred.eq(y).unwrap().to_dtype(DType::U32).unwrap().sum_all().unwrap().to_scalar::<u32>().unwrap() as usize;
        total += y.dim(0).unwrap();
    }
    right as f64 / total as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // Both stacks run in this process, so both get the process settings `ember` uses.
    ember_kernels::process::tune_for_training();
    let threads = rayon::current_num_threads();
    let (train_set, name) = data(Split::Train);
    let (test_set, _) = data(Split::Test);
    let timed: usize = std::env::var("EMBER_BENCH_BATCHES").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let cfg = ThroughputConfig { warmup_batches: 20, timed_batches: timed, inference_passes: 3 };
    eprintln!("classic_cnn_end_to_end: data = {name}, threads = {threads}, batch {BATCH}, {timed} timed batches");
    let train = batches(train_set.clone(), BATCH, Some(0));
    let test = batches(test_set, 1000, None);
    let test_images: Vec<Tensor> = test.iter().map(|(x, _)| x.clone()).collect();

    let mut results: Vec<(&str, Vec<f64>, Vec<f64>)> = vec![("ember", vec![], vec![]), ("candle-nn", vec![], vec![])];
    for round in 0..ROUNDS {
        let mut stacks: Vec<Box<dyn Stack>> = vec![Box::new(Ember::new(round as u64)), Box::new(Candle::new())];
        for (stack, result) in stacks.iter_mut().zip(results.iter_mut()) {
            if std::env::var("EMBER_BENCH_ONLY").is_ok_and(|only| only != stack.name()) {
                continue;
            }
            let t = training_images_per_s(&train, &cfg, |x, y| stack.step(x, y)).unwrap();
            let i = inference_images_per_s(&test_images, &cfg, |x| stack.infer(x)).unwrap();
            eprintln!("  round {round}: {:<10} train {t:>8.0} img/s   infer {i:>8.0} img/s", stack.name());
            result.1.push(t);
            result.2.push(i);
        }
    }
    let mut json = serde_json::json!({ "data": name, "threads": threads, "batch": BATCH, "timed_batches": timed });
    println!("\nclassic CNN, {name}, {threads} threads, medians of {ROUNDS} rounds");
    println!("{:<12} {:>14} {:>14}", "stack", "train img/s", "infer img/s");
    for (stack, t, i) in &results {
        if t.is_empty() {
            continue;
        }
        let (t, i) = (median(t.clone()), median(i.clone()));
        println!("{stack:<12} {t:>14.0} {i:>14.0}");
        json[stack] = serde_json::json!({ "train_images_per_s": t, "infer_images_per_s": i });
    }
    if let (Some(e), Some(c)) =
        (json["ember"]["train_images_per_s"].as_f64(), json["candle-nn"]["train_images_per_s"].as_f64())
    {
        println!("ember / candle-nn training: {:.1}x", e / c);
    }

    if std::env::var("EMBER_BENCH_EPOCH").is_ok_and(|v| v == "1") {
        let epoch = batches(train_set, BATCH, Some(1));
        let mut stacks: Vec<Box<dyn Stack>> = vec![Box::new(Ember::new(0)), Box::new(Candle::new())];
        for stack in stacks.iter_mut() {
            let start = std::time::Instant::now();
            for (x, y) in &epoch {
                stack.step(x, y).unwrap();
            }
            let acc = accuracy(stack.as_ref(), &test);
            let secs = start.elapsed().as_secs_f64();
            println!("{:<12} one epoch: {secs:.1} s, test accuracy {:.2} %", stack.name(), acc * 100.0);
            json[stack.name()]["epoch_test_accuracy"] = serde_json::json!(acc);
        }
    }
    if let Some(dir) = std::env::var_os("EMBER_BENCH_OUT") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("classic_cnn.json"), json.to_string()).unwrap();
    }
}
