//! Continual learning: one network learns the digits 0-4, then the digits 5-9, and forgets the
//! first task unless something protects it.
//!
//! What it shows: `learn_continually` trains a model on a `TaskSequence` of class splits in turn
//! and scores it on every task seen so far after each one, giving the accuracy matrix `R[i][j]`
//! (accuracy on task `j` after training task `i`), the average accuracy (the last row's mean)
//! and the forgetting (how far each old task fell from its best). Three methods with the same
//! training budget: naive fine-tuning, rehearsal (20 stored training images per old class,
//! replayed with the new task's) and EWC (a penalty keeping the weights that mattered for the old
//! task close to their values).
//!
//! Run it:
//!
//! ```text
//! cargo run --release -p ember --example continual            # class-incremental
//! cargo run --release -p ember --example continual -- task    # task-incremental
//! ```
//!
//! Class-incremental (the default): the model must tell all ten digits apart at test time.
//! Task-incremental: it is told which task an image belongs to and chooses among that task's
//! five classes. Data: the bundled MNIST sample (6,000 training, 2,000 test digits), `mnist-cnn`,
//! 2 epochs per task.
//!
//! What it prints (measured in release on 2 shared cores, about 30 s): per method the 2x2 accuracy
//! matrix, the average accuracy and the forgetting. Class-incremental: naive forgets task 1
//! completely (97.09 % on it after task 1, 0.00 % after task 2: average 47.68 %, forgetting 97.09
//! points); rehearsal keeps 83.14 % of it (average 89.92 %, forgetting 13.95); EWC 33.82 %
//! (average 62.36 %, forgetting 63.28). Task-incremental (`-- task`, about 34 s), where choosing
//! among a task's own classes is much easier: naive 95.34 % average (forgetting 1.55 points),
//! rehearsal 96.34 % (0.58), EWC 93.98 % (0.87).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use ember::data::{mnist_sample, Split};
use ember::finetune::{learn_continually, ContinualConfig, ContinualReport, Method, Setting, TaskSequence};
use ember::prelude::*;

fn print_matrix(report: &ContinualReport) {
    let tasks = report.tasks.len();
    println!("  test accuracy (%) after training task i (rows) on task j (columns):");
    let header: String = (1..=tasks).map(|j| format!("{:>9}", format!("task {j}"))).collect();
    println!("  {:9}{header}", "");
    for (i, row) in report.accuracy.rows().iter().enumerate() {
        let cells: String = row.iter().map(|a| format!("{:>9.2}", a * 100.0)).collect();
        println!("  {:<9}{cells}", format!("task {}", i + 1));
    }
}

fn main() -> Result<()> {
    let started = Instant::now();
    let setting = match std::env::args().nth(1).as_deref() {
        None | Some("class") => Setting::ClassIncremental,
        Some("task") => Setting::TaskIncremental,
        Some(other) => bail!("unknown setting {other} (expected `class` or `task`)"),
    };
    let train: Arc<dyn Dataset> = Arc::new(mnist_sample(Split::Train)?);
    let test: Arc<dyn Dataset> = Arc::new(mnist_sample(Split::Test)?);
    // Two tasks: digits 0-4, then digits 5-9. The model keeps one 10-class head throughout.
    let tasks = TaskSequence::parse("0-4,5-9", 10)?;
    let methods =
        [Method::Naive, Method::Rehearsal { per_class: 20 }, Method::Ewc { lambda: 10_000.0, fisher_samples: 500 }];
    println!("{setting}: tasks {:?}, mnist-cnn, 2 epochs per task", tasks.tasks());
    let mut summary = Vec::new();
    for method in methods {
        let method_started = Instant::now();
        // Every method starts from the same initial weights.
        let seed = 42;
        let options = ModelOptions { seed, ..ModelOptions::mnist() };
        let model = FineTuneModel::scratch("mnist-cnn", &options, seed)?;
        let cfg = ContinualConfig { method, setting, epochs_per_task: 2, batch_size: 64, lr: 1e-3, seed, workers: 1 };
        println!("\n{method}:");
        let report = learn_continually(&model, &train, &test, &tasks, &cfg, &mut |t, r| {
            println!(
                "  task {} epoch {}/{}  train_loss {:.4}  train_acc {:.4}  {:.1}s",
                t + 1,
                r.epoch,
                r.epochs,
                r.train_loss,
                r.train_accuracy,
                r.seconds
            )
        })?;
        print_matrix(&report);
        let average = report.accuracy.average_accuracy() * 100.0;
        let forgetting = report.accuracy.forgetting().unwrap_or(0.0) * 100.0;
        println!(
            "  average accuracy {average:.2} %, forgetting {forgetting:.2} points ({:.0} s)",
            method_started.elapsed().as_secs_f64()
        );
        summary.push((method, average, forgetting));
    }
    println!("\n{setting}, summary:");
    for (method, average, forgetting) in summary {
        println!("  {:<40} average accuracy {average:>6.2} %  forgetting {forgetting:>6.2} points", method.to_string());
    }
    println!("({:.0} s in all)", started.elapsed().as_secs_f64());
    Ok(())
}
