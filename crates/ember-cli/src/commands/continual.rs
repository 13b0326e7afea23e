//! `ember continual`: a sequence of class-split tasks learned in turn (naive, rehearsal, EWC or
//! LwF; class- or task-incremental), with the accuracy matrix, average accuracy and forgetting.

use anyhow::Context;
use ember_data::ColorMode;
use ember_finetune::{learn_continually, ContinualConfig, DistillConfig, FineTuneModel, Method, Setting, TaskSequence};
use ember_zoo::ModelOptions;
use serde_json::json;

use crate::args::ContinualArgs;

fn method(args: &ContinualArgs) -> anyhow::Result<Method> {
    Ok(match args.method.as_str() {
        "naive" => Method::Naive,
        "rehearsal" => Method::Rehearsal { per_class: args.replay_per_class },
        "ewc" => Method::Ewc { lambda: args.ewc_lambda, fisher_samples: args.fisher_samples },
        "lwf" => Method::Lwf(DistillConfig { temperature: args.lwf_temperature, alpha: args.lwf_alpha }),
        other => anyhow::bail!("--method {other}: not one of naive, rehearsal, ewc, lwf"),
    })
}

pub fn run(args: &ContinualArgs) -> anyhow::Result<()> {
    let setting = match args.setting.as_str() {
        "class" => Setting::ClassIncremental,
        "task" => Setting::TaskIncremental,
        other => anyhow::bail!("--setting {other}: not one of class, task"),
    };
    let cfg = ContinualConfig {
        method: method(args)?,
        setting,
        epochs_per_task: args.epochs_per_task,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        workers: crate::data::workers(),
    };
    cfg.validate()?;
    let mut data = args.data.open(ColorMode::Gray, false)?;
    args.limits.apply(&mut data)?;
    let test = data.test.clone().context("the data has no test split")?;
    let classes = data.class_names.len();
    // The error names the spec (`tasks `0-4,4-9`: ...`).
    let tasks = TaskSequence::parse(&args.tasks, classes)?;
    let input = ember_zoo::info(&args.model)?.input;
    let options = ModelOptions { seed: args.seed, ..ModelOptions::new(input, classes) };
    let device = args.device.open()?;
    let model = FineTuneModel::scratch_on(&args.model, &options, args.seed, &device, candle_core::DType::F32)?;
    println!(
        "continual learning, {}, {}: {} tasks {:?} of {} ({} training, {} test images); {}, {} epochs per task, \
         batch {}, lr {}",
        cfg.method,
        setting,
        tasks.len(),
        tasks.tasks(),
        data.origins.train,
        data.train.len(),
        test.len(),
        args.model,
        cfg.epochs_per_task,
        cfg.batch_size,
        cfg.lr
    );
    let report = learn_continually(&model, &data.train, &test, &tasks, &cfg, &mut |t, r| {
        println!(
            "task {}/{} epoch {}/{}  train_loss {:.4}  train_acc {:.4}  {:.1}s",
            t + 1,
            tasks.len(),
            r.epoch,
            r.epochs,
            r.train_loss,
            r.train_accuracy,
            r.seconds
        );
    })?;
    println!("test accuracy (%) after training task i (rows) on task j (columns):");
    let header: String = (1..=tasks.len()).map(|j| format!("{:>9}", format!("task {j}"))).collect();
    println!("{:9}{header}", "");
    for (i, row) in report.accuracy.rows().iter().enumerate() {
        let cells: String = row.iter().map(|a| format!("{:>9.2}", a * 100.0)).collect();
        println!("{:<9}{cells}", format!("task {}", i + 1));
    }
    let forgetting = report.accuracy.forgetting();
    println!(
        "average accuracy {:.2} %, forgetting {}",
        report.accuracy.average_accuracy() * 100.0,
        forgetting.map_or("- (one task)".to_string(), |f| format!("{:.2} points", f * 100.0))
    );
    if args.report.json {
        println!(
            "{}",
            json!({
                "method": args.method, "setting": args.setting, "tasks": report.tasks, "model": args.model,
                "accuracy": report.accuracy.rows(), "average_accuracy": report.accuracy.average_accuracy(),
                "forgetting": forgetting, "train_examples": report.train_examples,
                "test_examples": report.test_examples, "epochs_per_task": cfg.epochs_per_task,
                "batch_size": cfg.batch_size, "lr": cfg.lr, "seed": cfg.seed,
            })
        );
    }
    Ok(())
}
