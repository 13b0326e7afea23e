//! End-to-end: the classic CNN (conv32-relu-pool-conv64-relu-pool-fc128-relu-fc10, Adam lr 1e-3
//! eps 1e-7, batch 64, f32) trained and run on Fashion-MNIST by ember and by a plain candle-nn
//! implementation of the same network, interleaved in one run (`ROUNDS` rounds, medians).
//!
//! ember runs in this process, tuned as the `ember` CLI tunes itself (`ember_kernels::process`);
//! plain candle-nn runs in a child process (this binary with `EMBER_BENCH_CHILD`) with candle's
//! default settings, as a candle-nn user runs it.
//!
//! Training: 20 warm-up batches, then `EMBER_BENCH_BATCHES` (default 300) timed batches.
//! Inference: the 10,000 test images at batch 1,000, median of 3 passes.
//! With `EMBER_BENCH_EPOCH=N` (N >= 1), each stack also trains one full epoch N times, run `r`
//! from fresh initial weights (ember: seed `r`) in the shuffled order of seed `1 + r` (the peer
//! script uses the same seeds for its own shuffles), and reports the mean test accuracy: one
//! epoch's accuracy moves by a few tenths of a point with the initial weights and the order.
//! `EMBER_BENCH_ONLY=ember` (or `candle-nn`) runs one stack only (for profiling).
//! Writes `classic_cnn.json` to `$EMBER_BENCH_OUT` when set (`cargo xtask bench` sets it).
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

/// Runs the plain candle-nn stack in a child process (this binary again), so it gets candle's
/// default process settings, as a user of candle-nn would; returns its JSON line.
fn candle_child(mode: &str, run: u64) -> serde_json::Value {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .env("EMBER_BENCH_CHILD", mode)
        .env("EMBER_BENCH_EPOCH_RUN", run.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "candle-nn child failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn timed_batches() -> usize {
    std::env::var("EMBER_BENCH_BATCHES").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
}

/// Trains one epoch in the shuffled order of run `run` and returns (seconds, test accuracy).
fn epoch(stack: &mut dyn Stack, train_set: LabelledImages, test: &[(Tensor, Tensor)], run: u64) -> (f64, f64) {
    let epoch = batches(train_set, BATCH, Some(1 + run));
    let start = std::time::Instant::now();
    for (x, y) in &epoch {
        stack.step(x, y).unwrap();
    }
    let acc = accuracy(stack, test);
    (start.elapsed().as_secs_f64(), acc)
}

fn run_child(mode: &str) {
    let (train_set, _) = data(Split::Train);
    let (test_set, _) = data(Split::Test);
    let test = batches(test_set, 1000, None);
    let mut stack = Candle::new();
    if mode == "epoch" {
        let run = std::env::var("EMBER_BENCH_EPOCH_RUN").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        let (secs, acc) = epoch(&mut stack, train_set, &test, run);
        println!("{}", serde_json::json!({ "epoch_seconds": secs, "epoch_test_accuracy": acc }));
        return;
    }
    // (A fresh child per epoch run: candle-nn draws new initial weights in each process.)
    let cfg = ThroughputConfig { warmup_batches: 20, timed_batches: timed_batches(), inference_passes: 3 };
    let train = batches(train_set, BATCH, Some(0));
    let images: Vec<Tensor> = test.iter().map(|(x, _)| x.clone()).collect();
    let t = training_images_per_s(&train, &cfg, |x, y| stack.step(x, y)).unwrap();
    let i = inference_images_per_s(&images, &cfg, |x| stack.infer(x)).unwrap();
    println!("{}", serde_json::json!({ "train_images_per_s": t, "infer_images_per_s": i }));
}

fn main() {
    if let Ok(mode) = std::env::var("EMBER_BENCH_CHILD") {
        return run_child(&mode);
    }
    // ember as the `ember` CLI runs it; candle-nn runs in a child process with its defaults.
    ember_kernels::process::tune_for_training();
    let threads = rayon::current_num_threads();
    let (train_set, name) = data(Split::Train);
    let (test_set, _) = data(Split::Test);
    let timed = timed_batches();
    let cfg = ThroughputConfig { warmup_batches: 20, timed_batches: timed, inference_passes: 3 };
    eprintln!("classic_cnn_end_to_end: data = {name}, threads = {threads}, batch {BATCH}, {timed} timed batches");
    let train = batches(train_set.clone(), BATCH, Some(0));
    let test = batches(test_set, 1000, None);
    let test_images: Vec<Tensor> = test.iter().map(|(x, _)| x.clone()).collect();
    let only = std::env::var("EMBER_BENCH_ONLY").ok();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);

    let mut results: Vec<(&str, Vec<f64>, Vec<f64>)> = vec![("ember", vec![], vec![]), ("candle-nn", vec![], vec![])];
    for round in 0..ROUNDS {
        if wanted("ember") {
            let mut stack = Ember::new(round as u64);
            let t = training_images_per_s(&train, &cfg, |x, y| stack.step(x, y)).unwrap();
            let i = inference_images_per_s(&test_images, &cfg, |x| stack.infer(x)).unwrap();
            eprintln!("  round {round}: ember      train {t:>8.0} img/s   infer {i:>8.0} img/s");
            results[0].1.push(t);
            results[0].2.push(i);
        }
        if wanted("candle-nn") {
            let r = candle_child("round", 0);
            let (t, i) = (r["train_images_per_s"].as_f64().unwrap(), r["infer_images_per_s"].as_f64().unwrap());
            eprintln!("  round {round}: candle-nn  train {t:>8.0} img/s   infer {i:>8.0} img/s");
            results[1].1.push(t);
            results[1].2.push(i);
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

    let epoch_runs: usize = std::env::var("EMBER_BENCH_EPOCH").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    for (stack, key) in [("ember", "ember"), ("candle-nn", "candle-nn")] {
        if epoch_runs == 0 || !wanted(stack) {
            continue;
        }
        let mut accuracies = Vec::new();
        for run in 0..epoch_runs {
            let (secs, acc) = if stack == "ember" {
                epoch(&mut Ember::new(run as u64), train_set.clone(), &test, run as u64)
            } else {
                let r = candle_child("epoch", run as u64);
                (r["epoch_seconds"].as_f64().unwrap(), r["epoch_test_accuracy"].as_f64().unwrap())
            };
            println!("{stack:<12} one epoch (run {run}): {secs:.1} s, test accuracy {:.2} %", acc * 100.0);
            accuracies.push(acc);
        }
        let mean = accuracies.iter().sum::<f64>() / accuracies.len() as f64;
        println!("{stack:<12} one epoch: mean test accuracy {:.2} % over {epoch_runs} runs", mean * 100.0);
        json[key]["epoch_test_accuracy"] = serde_json::json!(mean);
        json[key]["epoch_test_accuracies"] = serde_json::json!(accuracies);
    }
    if let Some(dir) = std::env::var_os("EMBER_BENCH_OUT") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("classic_cnn.json"), json.to_string()).unwrap();
    }
}
