//! `ember bench`: training and inference throughput of a zoo model (like timm's benchmark
//! script): warm-up steps, then timed training steps (forward, cross-entropy, backward, Adam) and
//! timed inference passes, in images per second.

use candle_core::{DType, Device, ModuleT, Tensor};
use ember_layers::{loss, ParamStore};
use ember_optim::{Adam, AdamConfig, Optimizer};
use ember_train::throughput::{inference_images_per_s, training_images_per_s, ThroughputConfig};
use serde_json::json;

use crate::args::BenchArgs;

/// Batches of real images from a dataset, or of seeded random pixels and labels shaped like the
/// model's default input.
fn batches(
    args: &BenchArgs,
    input: (usize, usize, usize),
    classes: usize,
    count: usize,
    device: &Device,
) -> anyhow::Result<Vec<(Tensor, Tensor)>> {
    let b = args.batch_size;
    if args.data.given() {
        let data = args.data.open(ember_data::ColorMode::for_channels(input.0), false)?;
        let info = ember_zoo::info(&args.model)?;
        let plan = crate::data::InputPlan::new(&data, input.0, input.1, info.preprocessing)?;
        let loader = plan.eval_loader(data.train.clone(), b, crate::data::workers())?.with_drop_last(true);
        let mut out = Vec::with_capacity(count);
        for batch in loader.epoch(0, device).take(count) {
            let batch = batch?;
            out.push((batch.images, batch.labels));
        }
        anyhow::ensure!(!out.is_empty(), "the data has fewer than {b} training images");
        return Ok(out);
    }
    let (c, h, w) = input;
    (0..count.min(8))
        .map(|i| {
            let x = Tensor::rand(0f32, 1f32, (b, c, h, w), device)?;
            let y = Tensor::from_vec((0..b).map(|j| ((i * b + j) % classes.max(1)) as u32).collect(), b, device)?;
            Ok((x, y))
        })
        .collect()
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if let Some(threads) = args.threads {
        anyhow::ensure!(threads > 0, "--threads must be positive");
        // candle's matmul reads RAYON_NUM_THREADS; ember's kernels use rayon's global pool.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .map_err(|e| anyhow::anyhow!("--threads {threads}: {e}"))?;
    }
    let info = ember_zoo::info(&args.model)?;
    anyhow::ensure!(
        info.task == ember_zoo::Task::Classification,
        "`{}` is not a classifier; ember bench measures classifiers",
        args.model
    );
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be positive");
    let (input, classes) = if args.data.given() {
        let data = args.data.open(ember_data::ColorMode::for_channels(info.input.0), false)?;
        // Fixed-size data at its own size and colour; folders at the model's input.
        let input = crate::data::fixed_input(&data)?.unwrap_or(info.input);
        (input, data.classes())
    } else {
        (info.input, info.classes)
    };
    let options = ember_zoo::ModelOptions::new(input, classes);
    let device = args.device.open()?;
    let store = ParamStore::new(0, &device);
    let mut model = ember_zoo::build_with(&args.model, &options, store.var_builder(DType::F32))?;
    let trainable = if args.freeze_backbone {
        // Frozen parameters enter the forward pass detached: backpropagation stops at the head.
        let head = ember_finetune::HeadInfo::find(&model, input)?;
        ember_layers::freeze(&mut model, &["*"]);
        ember_layers::unfreeze(&mut model, &[head.pattern()]);
        ember_layers::trainable_vars(&model)
    } else {
        store.vars()
    };
    let model = model;
    let mut adam = Adam::new(trainable, AdamConfig { lr: 1e-3, eps: 1e-7, ..AdamConfig::default() })?;
    let cfg = ThroughputConfig { warmup_batches: args.warmup, timed_batches: args.batches, inference_passes: 3 };
    let data = batches(args, input, classes, args.warmup + args.batches, &device)?;
    let threads = rayon::current_num_threads();
    eprintln!(
        "bench {}{} on {}: input {}x{}x{}, {classes} classes, batch {}, {threads} threads, {} warm-up + {} timed batches ({})",
        args.model,
        if args.freeze_backbone { " (frozen backbone)" } else { "" },
        args.device.device,
        input.0,
        input.1,
        input.2,
        args.batch_size,
        args.warmup,
        args.batches,
        args.data.name().unwrap_or("random images")
    );
    let train = training_images_per_s(&data, &cfg, |x, y| -> candle_core::Result<()> {
        let loss = loss::cross_entropy(&model.forward_t(x, true)?, y)?;
        adam.step(&loss.backward()?)?;
        // A GPU runs ahead of the host: time the work, not its queueing.
        device.synchronize()
    })?;
    let images: Vec<Tensor> = data.iter().map(|(x, _)| x.clone()).collect();
    let infer = inference_images_per_s(&images, &cfg, |x| -> candle_core::Result<Tensor> {
        // As `ember eval` and PyTorch's `inference_mode`: no gradient graph, so each activation
        // is freed as soon as the next layer has read it.
        let _inference = ember_kernels::no_grad();
        let y = model.forward_t(x, false)?;
        device.synchronize()?;
        Ok(y)
    })?;
    println!("train {train:>10.1} images/s");
    println!("infer {infer:>10.1} images/s");
    if args.report.json {
        println!(
            "{}",
            json!({
                "model": args.model, "device": args.device.device.to_string(), "batch_size": args.batch_size, "threads": threads,
                "input": [input.0, input.1, input.2], "data": args.data.name().unwrap_or("random"),
                "train_images_per_s": train, "infer_images_per_s": infer, "freeze_backbone": args.freeze_backbone,
            })
        );
    }
    Ok(())
}
