//! `ember predict`: classify image files with a zoo model and pretrained or fine-tuned weights.

use std::path::Path;

use anyhow::Context;
use candle_core::{Device, Tensor};
use candle_nn::ModuleT;
use ember_finetune::{load_state, read_checkpoint, FineTuneModel, ImagePreprocess, LoadOptions, RenameRule};
use ember_zoo::ModelOptions;
use serde_json::json;

use crate::args::PredictArgs;

/// Environment variable naming a class-names file (one name a line) when `--labels` is absent.
pub const LABELS_ENV: &str = "EMBER_LABELS";

fn read_labels(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read class names", path.display()))?;
    Ok(text.lines().map(|l| l.trim().to_string()).collect())
}

pub fn run(args: &PredictArgs) -> anyhow::Result<()> {
    let info = ember_zoo::info(&args.model)?;
    ImagePreprocess { resize: args.resize, crop: args.crop, ..ImagePreprocess::efficientnet_lite() }.validate()?;
    let (_, tensors) = read_checkpoint(&args.weights)?;
    // The class count is the checkpoint's: build once to find the head, rebuild if it differs.
    let mut options = ModelOptions::new(info.input, info.classes.max(1));
    let probe = FineTuneModel::scratch(&args.model, &options, 0)?;
    let head_bias = format!("{}.bias", probe.head.head);
    let rename_rules: Vec<RenameRule> = args.rename.iter().map(|r| RenameRule::parse(r)).collect::<Result<_, _>>()?;
    if let Some((_, bias)) = tensors.iter().find(|(n, _)| ember_finetune::rename(&rename_rules, n) == head_bias) {
        options.classes = bias
            .dims1()
            .with_context(|| format!("{}: head bias `{head_bias}` is not a vector", args.weights.display()))?;
    }
    let model = if options.classes == probe.options.classes {
        probe
    } else {
        FineTuneModel::scratch(&args.model, &options, 0)?
    };
    let load = LoadOptions { rename: rename_rules, ..LoadOptions::strict() };
    load_state(&model.store, tensors, &load, &args.weights.display().to_string())?;

    let labels_path = args.labels.clone().or_else(|| std::env::var_os(LABELS_ENV).map(Into::into));
    let labels = match &labels_path {
        Some(p) => read_labels(p)?,
        None => Vec::new(),
    };
    let preprocess = ImagePreprocess { resize: args.resize, crop: args.crop, ..ImagePreprocess::efficientnet_lite() };
    let (scale, shift) = model.input_affine;
    // `x * scale + shift` written as `(x - mean) / std`.
    let preprocess =
        ImagePreprocess { mean: [(-shift / scale) as f32; 3], std: [(1.0 / scale) as f32; 3], ..preprocess };
    let mut results = Vec::new();
    for image in &args.images {
        let x = preprocess.load(image)?.unsqueeze(0)?;
        let probs = candle_nn::ops::softmax(&model.network.forward_t(&x, false)?, 1)?.squeeze(0)?;
        let top = top_k(&probs, args.top)?;
        println!("{}:", image.display());
        let mut list = Vec::new();
        for (rank, (class, p)) in top.iter().enumerate() {
            let name = labels.get(*class).map(String::as_str).unwrap_or("");
            println!("  {}. {:<24} {:>6.2} %  (class {class})", rank + 1, name, p * 100.0);
            list.push(json!({"class": class, "label": labels.get(*class), "probability": p}));
        }
        results.push(json!({"image": image, "top": list}));
    }
    if args.json {
        println!("{}", json!({"model": args.model, "weights": args.weights, "predictions": results}));
    }
    Ok(())
}

fn top_k(probs: &Tensor, k: usize) -> anyhow::Result<Vec<(usize, f32)>> {
    let mut v: Vec<(usize, f32)> = probs.to_device(&Device::Cpu)?.to_vec1::<f32>()?.into_iter().enumerate().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v.truncate(k.max(1));
    Ok(v)
}
