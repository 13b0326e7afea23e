//! `ember ensemble` and `ember distill`: combine trained classifiers, and train a smaller
//! student from them.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device};
use candle_nn::ModuleT;
use ember_data::{ColorMode, DataLoader};
use ember_finetune::{evaluate_ensemble, Combine, Distill, DistillConfig, Ensemble};
use ember_layers::ParamStore;
use ember_optim::{Adam, AdamConfig, OneCycle};
use ember_train::{checkpoint, FitOptions, Learner};
use ember_zoo::{ModelCard, ModelOptions};
use serde_json::json;

use crate::args::{CombineArg, DataArgs, DistillArgs, EnsembleArgs};
use crate::data::InputPlan;
use crate::run_info::RunInfo;

/// A member checkpoint rebuilt from its model card (or the run.json beside it, else `model` on
/// 1x28x28 with 10 classes) and loaded strictly, with the card that describes its input.
fn load_member(
    model: &str,
    path: &Path,
    device: &Device,
) -> anyhow::Result<(Box<dyn ModuleT + Send + Sync>, ModelCard)> {
    let card = match super::predict::card_of(path)? {
        Some(card) => card,
        None => {
            let info = RunInfo::summary_beside(path)?;
            let model = info.as_ref().map(|i| i.model.clone()).unwrap_or_else(|| model.to_string());
            let [c, h, w] = info.as_ref().and_then(|i| i.input).unwrap_or([1, 28, 28]);
            let classes = info.as_ref().and_then(|i| i.classes).unwrap_or(10);
            ModelCard {
                preprocessing: ember_zoo::info(&model)?.preprocessing,
                model,
                input: (c, h, w),
                class_names: ember_data::numbered_names(classes),
                batch_norm: true,
            }
        }
    };
    let store = ParamStore::new(0, device);
    let net = ember_zoo::build_with(&card.model, &card.options(), store.var_builder(DType::F32))?;
    checkpoint::load(&store, path).with_context(|| format!("loading member {}", path.display()))?;
    Ok((Box::new(net), card))
}

/// Every member must read the same input the same way: one loader serves them all.
/// Every checkpoint in `paths` as a `model`, and the card they all share (refused when they
/// differ).
#[allow(clippy::type_complexity)]
fn load_members(
    model: &str,
    paths: &[std::path::PathBuf],
    device: &Device,
) -> anyhow::Result<(Vec<Box<dyn ModuleT + Send + Sync>>, ModelCard)> {
    let (members, cards): (Vec<_>, Vec<_>) =
        paths.iter().map(|p| load_member(model, p, device)).collect::<anyhow::Result<Vec<_>>>()?.into_iter().unzip();
    Ok((members, common_card(paths, &cards)?))
}

fn common_card(paths: &[std::path::PathBuf], cards: &[ModelCard]) -> anyhow::Result<ModelCard> {
    let first = cards.first().context("no members")?;
    for (path, card) in paths.iter().zip(cards) {
        anyhow::ensure!(
            card.input == first.input && card.preprocessing == first.preprocessing && card.classes() == first.classes(),
            "{}: its input {:?}, preprocessing or {} classes differ from the first member's ({:?}, {} classes); \
             members must share one input",
            path.display(),
            card.input,
            card.classes(),
            first.input,
            first.classes()
        );
    }
    Ok(first.clone())
}

/// The test split of `data`, read as `card` describes.
fn test_loader(data: &DataArgs, limit: Option<usize>, card: &ModelCard) -> anyhow::Result<(DataLoader, Vec<String>)> {
    let color = ColorMode::for_channels(card.input.0);
    let mut data = crate::data::open_for_test(data.dataset.as_deref(), data.data_dir.as_deref(), color, false)?;
    if let Some(n) = limit {
        data.limit_test(n)?;
    }
    let test = data.test.clone().context("the data has no test split")?;
    let plan = InputPlan::new(&data, card.input.0, card.input.1, card.preprocessing)?;
    Ok((plan.eval_loader(test, 100, crate::data::workers())?, data.class_names))
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

pub fn ensemble(args: &EnsembleArgs) -> anyhow::Result<()> {
    let device = args.device.open()?;
    let (members, card) = load_members(&args.model, &args.checkpoints, &device)?;
    let ensemble = Ensemble::new(members, combine_from(args.combine, &args.weights)?)?;
    let (test, _) = test_loader(&args.data, args.test_limit, &card)?;
    let classes = card.classes();
    let report = evaluate_ensemble(&ensemble, &test, classes, &device)?;
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
    if args.report.json {
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
    let device = args.device.open()?;
    let (members, card) = load_members(&args.teacher_model, &args.teachers, &device)?;
    let teacher = Ensemble::new(members, Combine::Mean)?;
    let mut data = args.data.open(ColorMode::for_channels(card.input.0), false)?;
    if let Some(n) = args.limits.train_limit {
        data.limit_train(n)?;
    }
    let (test, _) = test_loader(&args.data, args.limits.test_limit, &card)?;
    let classes = card.classes();
    let plan = InputPlan::new(&data, card.input.0, card.input.1, card.preprocessing)?;
    let n_train = data.train.len();
    let ops = plan.train_ops(Some(args.ops.as_str()), "none");
    let loader = plan.train_loader(data.train.clone(), args.batch_size, args.seed, &ops, crate::data::workers())?;

    let store = ParamStore::new(args.seed, &device);
    // The student reads the teachers' input.
    let options = ModelOptions { seed: args.seed, ..ModelOptions::new(card.input, classes) };
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
    let fit = FitOptions { classes, device: device.clone(), ..FitOptions::new(args.epochs).with_schedule(&schedule) };
    let step = Distill { student: &student, teacher: &teacher, cfg };
    let mut learner = Learner::with_step(step, &store, &mut opt);
    for r in learner.fit(&loader, None, &fit)? {
        println!(
            "epoch {:>2}/{}  train_loss {:.4}  train_acc {:.4}  {:.1}s",
            r.epoch, r.epochs, r.train_loss, r.train_accuracy, r.seconds
        );
    }
    let eval = ember_train::evaluate_on(&student, &test, classes, &device)?;
    let acc = eval.confusion.accuracy();
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let path = args.out.join("model.safetensors");
    let student_card = ModelCard { model: args.student.clone(), batch_norm: true, ..card.clone() };
    checkpoint::save_with_metadata(&store, student_card.to_metadata(), &path)?;
    println!(
        "student test accuracy {:.2} % ({} images); weights in {}",
        acc * 100.0,
        eval.confusion.total(),
        path.display()
    );
    if args.report.json {
        println!(
            "{}",
            json!({"student": args.student, "teachers": args.teachers, "temperature": cfg.temperature, "alpha": cfg.alpha,
                   "accuracy": acc, "test_loss": eval.loss, "train_images": n_train, "test_images": eval.confusion.total(),
                   "seconds": started.elapsed().as_secs_f64(), "checkpoint": path})
        );
    }
    Ok(())
}
