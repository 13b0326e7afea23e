//! `ember eval`.

use candle_core::{DType, Device};
use ember_data::{DataLoader, KnownDataset, Split};
use ember_layers::ParamStore;
use ember_train::{checkpoint, evaluate};
use serde_json::json;

use crate::args::EvalArgs;
use crate::run_info::RunInfo;

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let info = RunInfo::summary_beside(&args.checkpoint)?;
    let model_name =
        args.model.clone().or_else(|| info.as_ref().map(|i| i.model.clone())).unwrap_or_else(|| "mnist-cnn".into());
    let dataset: KnownDataset = args
        .dataset
        .clone()
        .or_else(|| info.as_ref().map(|i| i.dataset.clone()))
        .unwrap_or_else(|| "mnist-sample".into())
        .parse()?;

    // The checkpoint first: a bad file fails before any data is read.
    let device = Device::Cpu;
    let store = ParamStore::new(0, &device);
    // The model is rebuilt for the input and classes it was trained with (run.json).
    let [c, h, w] = info.as_ref().and_then(|i| i.input).unwrap_or([1, 28, 28]);
    let classes = info.as_ref().and_then(|i| i.classes).unwrap_or(10);
    let model_options = ember_zoo::ModelOptions::new((c, h, w), classes);
    let model = ember_zoo::build_with(&model_name, &model_options, store.var_builder(DType::F32))?;
    checkpoint::load(&store, &args.checkpoint)?;

    let data_dir = args.data_dir.as_deref();
    let test_set = super::load_split(dataset, data_dir, Split::Test)?;
    let classes = test_set.classes();
    let eval = evaluate(&model, &DataLoader::new(std::sync::Arc::new(test_set), args.batch_size), classes)?;
    let m = &eval.confusion;
    let names = dataset.class_names();

    println!(
        "{} on {}: accuracy {:.2} % ({} images), loss {:.4}, macro F1 {:.4}",
        args.checkpoint.display(),
        data_dir.map_or_else(|| format!("{dataset} test split"), |d| d.display().to_string()),
        m.accuracy() * 100.0,
        m.total(),
        eval.loss,
        m.macro_f1()
    );
    println!("{:>12} {:>9} {:>9} {:>9} {:>8}", "class", "precision", "recall", "f1", "support");
    for c in 0..m.classes() {
        let name = names.get(c).copied().unwrap_or("?");
        println!("{:>12} {:>9.4} {:>9.4} {:>9.4} {:>8}", name, m.precision(c), m.recall(c), m.f1(c), m.support(c));
    }
    println!("confusion matrix (rows: true class, columns: predicted)");
    for row in m.rows() {
        println!("{}", row.iter().map(|v| format!("{v:>5}")).collect::<String>());
    }
    if args.json {
        let per_class: Vec<_> = (0..m.classes())
            .map(|c| json!({"class": c, "name": names.get(c), "precision": m.precision(c), "recall": m.recall(c), "f1": m.f1(c), "support": m.support(c)}))
            .collect();
        let out = json!({
            "accuracy": m.accuracy(),
            "loss": eval.loss,
            "macro_f1": m.macro_f1(),
            "images": m.total(),
            "per_class": per_class,
            "confusion_matrix": m.rows(),
        });
        println!("{out}");
    }
    Ok(())
}
