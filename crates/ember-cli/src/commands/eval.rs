//! `ember eval`: score a checkpoint on the test split of its data, rebuilding the model, its
//! input and preprocessing from the checkpoint's model card (or the run.json beside it).

use candle_core::DType;
use ember_data::ColorMode;
use ember_layers::ParamStore;
use ember_train::{checkpoint, evaluate_on};
use ember_zoo::ModelCard;
use serde_json::json;

use crate::args::EvalArgs;
use crate::data::InputPlan;
use crate::run_info::RunInfo;

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let card = super::predict::card_of(&args.checkpoint)?;
    let info = RunInfo::summary_beside(&args.checkpoint)?;
    let model_name = args
        .model
        .clone()
        .or_else(|| card.as_ref().map(|c| c.model.clone()))
        .or_else(|| info.as_ref().map(|i| i.model.clone()))
        .unwrap_or_else(|| ember_zoo::DEFAULT_CLASSIFIER.into());
    let zoo = ember_zoo::info(&model_name)?;
    // Without a card: the run.json's input and classes, else the MNIST defaults of old runs.
    let card = match card.filter(|c| c.model == model_name) {
        Some(card) => card,
        None => {
            let [c, h, w] = info.as_ref().and_then(|i| i.input).unwrap_or([1, 28, 28]);
            let classes = info.as_ref().and_then(|i| i.classes).unwrap_or(10);
            ModelCard {
                model: model_name.clone(),
                input: (c, h, w),
                class_names: ember_data::numbered_names(classes),
                preprocessing: zoo.preprocessing,
                batch_norm: true,
            }
        }
    };

    // The checkpoint first: a bad file fails before any data is read.
    let device = args.device.open()?;
    let store = ParamStore::new(0, &device);
    let model_options = card.options();
    let model = ember_zoo::build_with(&model_name, &model_options, store.var_builder(DType::F32))?;
    checkpoint::load(&store, &args.checkpoint)?;

    // The data: flags, else the run's.
    let (dataset, data_dir) = match (&args.data.dataset, &args.data.data_dir) {
        (None, None) => match &info {
            Some(i) => (Some(i.dataset.clone()).filter(|d| !d.is_empty()), i.data_dir.clone()),
            None => (None, None),
        },
        (d, dir) => (d.clone(), dir.clone()),
    };
    let data = crate::data::open_for_test(
        dataset.as_deref(),
        data_dir.as_deref(),
        ColorMode::for_channels(card.input.0),
        args.skip_bad_images,
    )?;
    anyhow::ensure!(
        data.classes() == card.classes(),
        "{}: the data has {} classes but the model {}",
        data_dir.as_deref().map_or_else(|| data.kind.to_string(), |d| d.display().to_string()),
        data.classes(),
        card.classes()
    );
    // Numbers stand for names where a side has none: IDX files carry no class names, and a
    // checkpoint without a card has numbers. Only two real, different name lists conflict.
    let numbered = |names: &[String]| *names == ember_data::numbered_names(names.len());
    if data.class_names != card.class_names && !numbered(&card.class_names) && !numbered(&data.class_names) {
        anyhow::bail!(
            "the data's classes [{}] differ from the checkpoint's [{}]",
            data.class_names.join(", "),
            card.class_names.join(", ")
        );
    }
    let (test, origin) = match &data.test {
        Some(t) => (t.clone(), data.origins.test.clone()),
        None => (data.train.clone(), format!("{} (the data has no test split: every example)", data.origins.train)),
    };
    let plan = InputPlan::new(&data, card.input.0, card.input.1, card.preprocessing)?;
    let batch = args.batch_size.unwrap_or_else(|| crate::data::eval_batch(card.input));
    let loader = plan.eval_loader(test, batch, crate::data::workers())?;
    let classes = card.classes();
    let eval = evaluate_on(&model, &loader, classes, &device)?;
    let m = &eval.confusion;
    let names = if numbered(&data.class_names) { &card.class_names } else { &data.class_names };

    println!(
        "{} on {origin}: accuracy {:.2} % ({} images), loss {:.4}, macro F1 {:.4}",
        args.checkpoint.display(),
        m.accuracy() * 100.0,
        m.total(),
        eval.loss,
        m.macro_f1()
    );
    println!("{:>12} {:>9} {:>9} {:>9} {:>8}", "class", "precision", "recall", "f1", "support");
    for c in 0..m.classes() {
        let name = names.get(c).map(String::as_str).unwrap_or("?");
        println!("{:>12} {:>9.4} {:>9.4} {:>9.4} {:>8}", name, m.precision(c), m.recall(c), m.f1(c), m.support(c));
    }
    println!("confusion matrix (rows: true class, columns: predicted)");
    for row in m.rows() {
        println!("{}", row.iter().map(|v| format!("{v:>5}")).collect::<String>());
    }
    if !data.skipped.is_empty() {
        println!("skipped {} images that cannot be decoded", data.skipped.len());
    }
    if args.report.json {
        let per_class: Vec<_> = (0..m.classes())
            .map(|c| json!({"class": c, "name": names.get(c), "precision": m.precision(c), "recall": m.recall(c), "f1": m.f1(c), "support": m.support(c)}))
            .collect();
        let out = json!({
            "accuracy": m.accuracy(),
            "loss": eval.loss,
            "macro_f1": m.macro_f1(),
            "images": m.total(),
            "data": origin,
            "skipped_images": data.skipped.len(),
            "per_class": per_class,
            "confusion_matrix": m.rows(),
        });
        println!("{out}");
    }
    Ok(())
}
