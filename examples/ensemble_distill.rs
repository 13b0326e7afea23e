//! Ensembles and knowledge distillation: three CNNs that differ only in their seed, their
//! ensemble, and a small MLP student taught by the ensemble's soft targets.
//!
//! What it shows: members trained with the `Learner` (seeds change their initial weights and
//! batch order); `Ensemble` with `Combine::Mean` (the average of the members' probabilities) and
//! `evaluate_ensemble`, which scores every member and the ensemble in one pass; `Distill`, a
//! training step whose loss mixes the KL divergence to the teachers' softened probabilities
//! (temperature 4, weight 0.5) with the usual cross-entropy, given to `Learner::with_step`; and
//! for comparison the same MLP trained on the labels alone.
//!
//! Run it:
//!
//! ```text
//! cargo run --release -p ember --example ensemble_distill
//! ```
//!
//! The members train on the first 3,000 of the bundled MNIST sample's 6,000 training digits (3
//! epochs each), the student on the first 1,000 only (20 epochs): distillation pays when the
//! student has fewer labels than its teachers saw. Scores are on the 2,000 test digits. No
//! arguments.
//!
//! What it prints (measured in release on 2 shared cores, about 26 s in all): members at 95.40,
//! 95.90 and 95.35 %, the ensemble at 96.25 %, and the `mlp` student (235,146 parameters) at
//! 90.80 % distilled against 89.70 % trained on the labels alone.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use ember::data::{mnist_sample, Split, Subset};
use ember::finetune::{evaluate_ensemble, Combine, Distill, DistillConfig, Ensemble};
use ember::optim::OneCycle;
use ember::prelude::*;
use ember::train::callback::OnEpoch;
use ember::train::{evaluate, EpochReport};

/// Training images the teachers learn from (of 6,000), to keep the example short.
const TRAIN_IMAGES: usize = 3000;

/// Labelled images the student gets: distillation helps most when the student has fewer labels
/// than its teachers saw, the teachers' soft targets carrying what the missing labels would.
const STUDENT_IMAGES: usize = 1000;

fn print_epoch(r: &EpochReport) {
    println!("  {r}");
}

/// Adam with a one-cycle schedule peaking at `lr`, for `epochs` over `train`.
fn fit_options(schedule: &OneCycle, epochs: usize) -> FitOptions<'_> {
    FitOptions::new(epochs).with_schedule(schedule)
}

/// A zoo model trained on the labels: `name` with parameters and batch order from `seed`.
fn train_model(name: &str, seed: u64, data: &Arc<dyn Dataset>, epochs: usize, batch: usize) -> Result<Network> {
    let store = ParamStore::new(seed, &Device::Cpu);
    let options = ModelOptions { seed, ..ModelOptions::mnist() };
    let model = ember::zoo::build_with(name, &options, store.var_builder(DType::F32))?;
    let train = DataLoader::new(data.clone(), batch).with_shuffle(seed).with_workers(1);
    let lr = 3e-3;
    let mut adam = Adam::new(store.vars(), AdamConfig { lr, ..AdamConfig::default() })?;
    let schedule = OneCycle::new(lr, epochs * train.num_batches());
    ember::train::fit(&model, &mut adam, &train, None, &fit_options(&schedule, epochs), print_epoch)?;
    // The network holds its parameters (shared with the store), so the store may go.
    Ok(model)
}

fn main() -> Result<()> {
    let started = Instant::now();
    let all: Arc<dyn Dataset> = Arc::new(mnist_sample(Split::Train)?);
    let train: Arc<dyn Dataset> = Arc::new(Subset::new(all, (0..TRAIN_IMAGES).collect())?);
    let test = DataLoader::new(Arc::new(mnist_sample(Split::Test)?), 250);
    let classes = 10;

    // Three members that differ only in their seed.
    let mut members: Vec<Box<dyn ModuleT + Send + Sync>> = Vec::new();
    for seed in [1, 2, 3] {
        println!("member {seed}: mnist-cnn, seed {seed}");
        members.push(Box::new(train_model("mnist-cnn", seed, &train, 3, 64)?));
    }

    // Their ensemble: the mean of the members' probabilities. One pass scores all of them.
    let ensemble = Ensemble::new(members, Combine::Mean)?;
    let report = evaluate_ensemble(&ensemble, &test, classes, &Device::Cpu)?;
    for (i, m) in report.members.iter().enumerate() {
        println!("member {}: test accuracy {:.2} %", i + 1, m.accuracy() * 100.0);
    }
    println!(
        "ensemble (mean of {}): test accuracy {:.2} % (best member {:.2} %)",
        ensemble.len(),
        report.ensemble.accuracy() * 100.0,
        report.best_member_accuracy() * 100.0
    );

    // The student: a small MLP, on the first 1,000 images only. `Distill` is a training step (the
    // Learner's `TrainStep`): the student's loss is 0.5 x the KL divergence to the ensemble's
    // probabilities at temperature 4 (times T^2) plus 0.5 x the cross-entropy to the labels. The
    // teachers only run forward.
    let epochs = 20;
    let few: Arc<dyn Dataset> = Arc::new(Subset::new(train.clone(), (0..STUDENT_IMAGES).collect())?);
    let store = ParamStore::new(7, &Device::Cpu);
    let options = ModelOptions { seed: 7, ..ModelOptions::mnist() };
    let student = ember::zoo::build_with("mlp", &options, store.var_builder(DType::F32))?;
    println!("student: mlp, {} parameters, distilled for {epochs} epochs", store.num_parameters());
    let loader = DataLoader::new(few.clone(), 32).with_shuffle(7).with_workers(1);
    let lr = 3e-3;
    let mut adam = Adam::new(store.vars(), AdamConfig { lr, ..AdamConfig::default() })?;
    let schedule = OneCycle::new(lr, epochs * loader.num_batches());
    let step = Distill { student: &student, teacher: &ensemble, cfg: DistillConfig { temperature: 4.0, alpha: 0.5 } };
    Learner::with_step(step, &store, &mut adam).with_callback(OnEpoch(print_epoch)).fit(
        &loader,
        None,
        &fit_options(&schedule, epochs),
    )?;
    let distilled = evaluate(&student, &test, classes)?.confusion.accuracy();

    // The same student, same seed and schedule, on the labels alone.
    println!("baseline: the same mlp trained on the labels alone");
    let alone = train_model("mlp", 7, &few, epochs, 32)?;
    let baseline = evaluate(&alone, &test, classes)?.confusion.accuracy();

    println!(
        "\nstudent test accuracy {:.2} % distilled, {:.2} % from the labels alone; ensemble {:.2} % ({:.0} s)",
        distilled * 100.0,
        baseline * 100.0,
        report.ensemble.accuracy() * 100.0,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
