//! `ember ensemble` and `ember distill`: combine trained classifiers, and train a smaller
//! student from them.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device};
use candle_nn::ModuleT;
use ember_augment::Pipeline;
use ember_data::{DataLoader, Dataset, KnownDataset, Split, Subset};
use ember_finetune::{evaluate_ensemble, Combine, Distill, DistillConfig, Ensemble};
use ember_layers::ParamStore;
use ember_optim::{Adam, AdamConfig, OneCycle};
use ember_train::{checkpoint, FitOptions, Learner};
use ember_zoo::ModelOptions;
use serde_json::json;

use crate::args::{CombineArg, DistillArgs, EnsembleArgs};
use crate::run_info::RunInfo;

/// Builds `model` (input and classes from the run.json beside `path`, else 1x28x28 and 10) and
/// loads the checkpoint at `path` strictly.
fn load_member(model: &str, path: &Path) -> anyhow::Result<Box<dyn ModuleT + Send + Sync>> {
    let info = RunInfo::summary_beside(path)?;
    let model = info.as_ref().map(|i| i.model.clone()).unwrap_or_else(|| model.to_string());
    let [c, h, w] = info.as_ref().and_then(|i| i.input).unwrap_or([1, 28, 28]);
    let classes = info.as_ref().and_then(|i| i.classes).unwrap_or(10);
    let store = ParamStore::new(0, &Device::Cpu);
    let net = ember_zoo::build_with(&model, &ModelOptions::new((c, h, w), classes), store.var_builder(DType::F32))?;
    checkpoint::load(&store, path).with_context(|| format!("loading member {}", path.display()))?;
    Ok(Box::new(net))
}

fn combine_from(arg: CombineArg, weights: &Option<String>) -> anyhow::Result<Combine> {
    Ok(match arg {
        CombineArg::Mean => Combine::Mean,
        CombineArg::Vote => Combine::Vote,
        CombineArg::Weighted => {
            let text = weights.as_deref().context("--combine weighted needs --weights w1,w2,...")?;
            let w: Result<Vec<f64>, _> = text.split(',').map(|s| s.trim().parse::<f64>()).collect();
            Combine::Weighted(w.with_context(|| format!("--weights `{text}`: not a list of numbers"))?)
        }
    })
}

fn test_loader(dataset: KnownDataset, data_dir: Option<&Path>, limit: Option<usize>) -> anyhow::Result<DataLoader> {
    let mut test: Arc<dyn Dataset> = Arc::new(super::load_split(dataset, data_dir, Split::Test)?);
    if let Some(n) = limit {
        test = Arc::new(Subset::new(test.clone(), (0..n.min(test.len())).collect())?);
    }
    Ok(DataLoader::new(test, 500))
}

pub fn ensemble(args: &EnsembleArgs) -> anyhow::Result<()> {
    let members: Vec<_> =
        args.checkpoints.iter().map(|p| load_member(&args.model, p)).collect::<anyhow::Result<_>>()?;
    let ensemble = Ensemble::new(members, combine_from(args.combine, &args.weights)?)?;
    let dataset: KnownDataset = args.dataset.parse()?;
    let test = test_loader(dataset, args.data_dir.as_deref(), args.test_limit)?;
    let classes = test.dataset().classes();
    let report = evaluate_ensemble(&ensemble, &test, classes)?;
    for (path, m) in args.checkpoints.iter().zip(&report.members) {
        println!("member {}: accuracy {:.2} %", path.display(), m.accuracy() * 100.0);
    }
    let acc = report.ensemble.accuracy();
    println!(
        "ensemble ({:?} of {}): accuracy {:.2} % on {} images (best member {:.2} %)",
        args.combine,
        ensemble.len(),
        acc * 100.0,
        report.ensemble.total(),
        report.best_member_accuracy() * 100.0
    );
    if args.json {
        let members: Vec<_> = args
            .checkpoints
            .iter()
            .zip(&report.members)
            .map(|(p, m)| json!({"checkpoint": p, "accuracy": m.accuracy(), "macro_f1": m.macro_f1()}))
            .collect();
        println!(
            "{}",
            json!({"combine": format!("{:?}", args.combine).to_lowercase(), "members": members, "accuracy": acc,
                   "macro_f1": report.ensemble.macro_f1(), "best_member_accuracy": report.best_member_accuracy(),
                   "test_images": report.ensemble.total()})
        );
    }
    Ok(())
}

pub fn distill(args: &DistillArgs) -> anyhow::Result<()> {
    DistillConfig { temperature: args.temperature, alpha: args.alpha }.validate()?;
    let started = Instant::now();
    let dataset: KnownDataset = args.dataset.parse()?;
    let members: Vec<_> =
        args.teachers.iter().map(|p| load_member(&args.teacher_model, p)).collect::<anyhow::Result<_>>()?;
    let teacher = Ensemble::new(members, Combine::Mean)?;
    let mut train: Arc<dyn Dataset> = Arc::new(super::load_split(dataset, args.data_dir.as_deref(), Split::Train)?);
    if let Some(n) = args.train_limit {
        train = Arc::new(Subset::new(train.clone(), (0..n.min(train.len())).collect())?);
    }
    let n_train = train.len();
    let test = test_loader(dataset, args.data_dir.as_deref(), args.test_limit)?;
    let classes = test.dataset().classes();
    let mut loader = DataLoader::new(train, args.batch_size).with_shuffle(args.seed).with_workers(1);
    let pipeline = Pipeline::parse(&args.ops)?;
    if !pipeline.is_identity() {
        loader = loader.with_transform(Arc::new(pipeline));
    }

    let store = ParamStore::new(args.seed, &Device::Cpu);
    let options = ModelOptions { seed: args.seed, ..ModelOptions::new((1, 28, 28), classes) };
    let student = ember_zoo::build_with(&args.student, &options, store.var_builder(DType::F32))?;
    let cfg = DistillConfig { temperature: args.temperature, alpha: args.alpha };
    println!(
        "distilling {} teacher(s) ({}) into {} ({} parameters) on {n_train} images, T {}, alpha {}",
        teacher.len(),
        args.teacher_model,
        args.student,
        store.num_parameters(),
        cfg.temperature,
        cfg.alpha
    );
    let mut opt = Adam::new(store.vars(), AdamConfig { lr: args.lr, ..AdamConfig::default() })?;
    let schedule = OneCycle::new(args.lr, (args.epochs * loader.num_batches()).max(1));
    let fit = FitOptions { classes, ..FitOptions::new(args.epochs).with_schedule(&schedule) };
    let step = Distill { student: &student, teacher: &teacher, cfg };
    let mut learner = Learner::with_step(step, &store, &mut opt);
    for r in learner.fit(&loader, None, &fit)? {
        println!(
            "epoch {:>2}/{}  train_loss {:.4}  train_acc {:.4}  {:.1}s",
            r.epoch, r.epochs, r.train_loss, r.train_accuracy, r.seconds
        );
    }
    let eval = ember_train::evaluate(&student, &test, classes)?;
    let acc = eval.confusion.accuracy();
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let path = args.out.join("model.safetensors");
    checkpoint::save(&store, &path)?;
    println!(
        "student test accuracy {:.2} % ({} images); weights in {}",
        acc * 100.0,
        eval.confusion.total(),
        path.display()
    );
    if args.json {
        println!(
            "{}",
            json!({"student": args.student, "teachers": args.teachers, "temperature": cfg.temperature, "alpha": cfg.alpha,
                   "accuracy": acc, "test_loss": eval.loss, "train_images": n_train, "test_images": eval.confusion.total(),
                   "seconds": started.elapsed().as_secs_f64(), "checkpoint": path})
        );
    }
    Ok(())
}
