//! `ember predict`: classify image files with a zoo model and pretrained or fine-tuned weights.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use candle_nn::ModuleT;
use ember_finetune::{load_state, read_checkpoint, FineTuneModel, LoadOptions, RenameRule};
use ember_zoo::{ModelCard, ModelOptions, Preprocessing};
use serde_json::json;

use crate::args::PredictArgs;
use crate::data::{ImageFiles, InputPlan};

/// Environment variable naming a class-names file (one name a line) when `--labels` is absent.
pub const LABELS_ENV: &str = "EMBER_LABELS";

fn read_labels(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read class names", path.display()))?;
    Ok(text.lines().map(|l| l.trim().to_string()).collect())
}

/// `0.485,0.456,0.406` as 1 or 3 finite numbers (one serves every channel).
fn channel_values(flag: &str, text: &str) -> anyhow::Result<[f32; 3]> {
    let values: Vec<f32> = text
        .split(',')
        .map(|v| v.trim().parse::<f32>().ok().filter(|v| v.is_finite()))
        .collect::<Option<_>>()
        .with_context(|| format!("--{flag} `{text}`: expected 1 or 3 comma-separated numbers"))?;
    match values[..] {
        [v] => Ok([v; 3]),
        [a, b, c] => Ok([a, b, c]),
        _ => anyhow::bail!("--{flag} `{text}`: expected 1 or 3 numbers, got {}", values.len()),
    }
}

/// The model card of an ember safetensors checkpoint, if it has one.
pub fn card_of(path: &Path) -> anyhow::Result<Option<ModelCard>> {
    if !path.is_file() {
        return Ok(None); // the checkpoint reader names a missing file or a directory
    }
    let bytes_start = {
        use std::io::Read;
        let mut head = [0u8; 9];
        let mut f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
        let n = f.read(&mut head).with_context(|| format!("{}", path.display()))?;
        head[..n].to_vec()
    };
    if bytes_start.len() < 9 || bytes_start[8] != b'{' {
        return Ok(None); // not safetensors (a PyTorch checkpoint has no card)
    }
    let metadata = ember_train::checkpoint::read_metadata(path)?;
    Ok(ModelCard::from_metadata(&metadata, &path.display().to_string())?)
}

pub fn run(args: &PredictArgs) -> anyhow::Result<()> {
    // Sizes first: nothing is read or allocated for a crop of 100,000 pixels.
    for (flag, v) in [("--resize", args.resize), ("--crop", args.crop)] {
        if let Some(v) = v {
            anyhow::ensure!(
                v <= ember_finetune::MAX_PREPROCESS_SIDE,
                "{flag} {v} is outside 1..={} pixels",
                ember_finetune::MAX_PREPROCESS_SIDE
            );
        }
    }
    let card = card_of(&args.weights)?;
    let model_name = args
        .model
        .clone()
        .or_else(|| card.as_ref().map(|c| c.model.clone()))
        .unwrap_or_else(|| ember_zoo::DEFAULT_PRETRAINED.into());
    let info = ember_zoo::info(&model_name)?;
    let card = card.filter(|c| c.model == model_name); // --model naming another model wins
    let (_, tensors) = read_checkpoint(&args.weights)?;
    let input = card.as_ref().map_or(info.input, |c| c.input);
    let input = match args.crop {
        Some(crop) => (input.0, crop as usize, crop as usize),
        None => input,
    };
    // The class count is the checkpoint's: build once to find the head, rebuild if it differs.
    let mut options = ModelOptions {
        batch_norm: card.as_ref().is_none_or(|c| c.batch_norm),
        ..ModelOptions::new(input, card.as_ref().map_or(info.classes.max(1), |c| c.classes()))
    };
    let device = args.device.open()?;
    let probe = FineTuneModel::scratch_on(&model_name, &options, 0, &device, DType::F32)?;
    let head_bias = format!("{}.bias", probe.head.head);
    let rename_rules: Vec<RenameRule> = ember_finetune::parse_rules(&args.rename.rename)?;
    if let Some((_, bias)) = tensors.iter().find(|(n, _)| ember_finetune::rename(&rename_rules, n) == head_bias) {
        options.classes = bias
            .dims1()
            .with_context(|| format!("{}: head bias `{head_bias}` is not a vector", args.weights.display()))?;
    }
    let model = if options.classes == probe.options.classes {
        probe
    } else {
        FineTuneModel::scratch_on(&model_name, &options, 0, &device, DType::F32)?
    };
    let load = LoadOptions { rename: rename_rules, ..LoadOptions::strict() };
    load_state(&model.store, tensors, &load, &args.weights.display().to_string())?;

    let labels = match (&args.labels, &card) {
        (Some(p), _) => read_labels(p)?,
        (None, Some(card)) => card.class_names.clone(),
        (None, None) => match std::env::var_os(LABELS_ENV) {
            Some(p) => read_labels(Path::new(&p))?,
            None => Vec::new(),
        },
    };
    let mut preprocessing: Preprocessing = card.as_ref().map_or(info.preprocessing, |c| c.preprocessing);
    if let Some(mean) = &args.mean {
        preprocessing.mean = channel_values("mean", mean)?;
    }
    if let Some(std) = &args.std {
        preprocessing.std = channel_values("std", std)?;
    }
    preprocessing.validate().map_err(|e| anyhow::anyhow!("preprocessing: {e}"))?;
    let mut plan = InputPlan::for_files(input, preprocessing);
    plan.resize = args.resize;
    if let Some(r) = args.resize {
        anyhow::ensure!(r as usize >= input.1, "--resize {r} is smaller than the crop {}", input.1);
    }
    let loader = plan.eval_loader(Arc::new(ImageFiles(args.images.clone())), 1, 0)?;
    let mut results = Vec::new();
    for (image, batch) in args.images.iter().zip(loader.epoch(0, &device)) {
        let x = batch?.images;
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
    if args.report.json {
        println!("{}", json!({"model": model_name, "weights": args.weights, "predictions": results}));
    }
    Ok(())
}

fn top_k(probs: &Tensor, k: usize) -> anyhow::Result<Vec<(usize, f32)>> {
    let mut v: Vec<(usize, f32)> = probs.to_device(&Device::Cpu)?.to_vec1::<f32>()?.into_iter().enumerate().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v.truncate(k.max(1));
    Ok(v)
}
