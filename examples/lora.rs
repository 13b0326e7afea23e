//! LoRA: adapt a pretrained model by training small low-rank updates of its weights, then merge
//! them in.
//!
//! What it shows: `LoraModel` wraps a `FineTuneModel` loaded from safetensors and adds, to each
//! targeted layer's weight `W`, an update `(alpha / rank) · B A` of rank 4; only `A`, `B` and the
//! new head train, the pretrained weights stay as they were. `merge()` then adds the updates into
//! the base weights, so the plain model computes what the adapted one did: the example checks
//! that on a batch of test images (the largest difference of the logits).
//!
//! Run it:
//!
//! ```text
//! cargo run --release -p ember --example lora
//! cargo run --release -p ember --example lora -- --weights FILE --model NAME
//! ```
//!
//! Without arguments, it first makes the "pretrained" file: the zoo's `mnist-cnn` (10 outputs)
//! trained for 2 epochs on the digits 0-4 of the bundled MNIST sample, saved as safetensors. The
//! new task is the digits 5-9 (5 classes) from 50 training images per digit. `--weights FILE
//! --model NAME` use your own weights of a zoo model with 1x28x28 input (`mlp`, `mnist-cnn`,
//! `lenet5`, `vgg-small`; every layer before the head is adapted) on the same digits.
//!
//! What it prints (measured in release on 2 shared cores, about 7 s in all): `LoRA rank 4 on 3
//! layers: 9129 trainable of 224389 parameters (4.1 %; adapters 8484, head 645)`, a test accuracy
//! of 88.95 % on the 968 test digits 5-9 after 10 epochs, and after merging a largest logit
//! difference of 0 (the merged weight is the very sum the adapted model computed) and the same
//! 88.95 %.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ember::data::{mnist_sample, per_class_subset, stratified_split, Split, Subset};
use ember::optim::{OneCycle, ParamGroup};
use ember::prelude::*;
use ember::train::evaluate;

mod common;
use common::{digits, flag_values, pretrain, print_epoch};

/// `--weights FILE --model NAME`, both or neither.
fn parse_args() -> Result<Option<(PathBuf, String)>> {
    let mut given = flag_values(&["--weights", "--model"], "--weights FILE --model NAME")?;
    let (weights, model) = (given.remove("--weights"), given.remove("--model"));
    match (weights, model) {
        (None, None) => Ok(None),
        (Some(w), Some(m)) => Ok(Some((PathBuf::from(w), m))),
        _ => bail!("give both --weights FILE and --model NAME, or neither"),
    }
}

fn main() -> Result<()> {
    let started = Instant::now();
    let seed = 42;
    let scratch = tempfile::tempdir()?;
    let (weights, model_name) = match parse_args()? {
        Some(given) => given,
        None => {
            let path = scratch.path().join("pretrained.safetensors");
            pretrain(&path)?;
            (path, "mnist-cnn".to_string())
        }
    };

    // The new task: digits 5-9 as classes 0-4, 50 training images each (10 % validate).
    let all: Arc<dyn Dataset> = Arc::new(digits(&mnist_sample(Split::Train)?, 5..10, true)?);
    let few: Arc<dyn Dataset> = Arc::new(Subset::new(all.clone(), per_class_subset(all.as_ref(), 50, seed)?)?);
    let split = stratified_split(few.as_ref(), 0.1, seed)?;
    let train = DataLoader::new(Arc::new(Subset::new(few.clone(), split.train)?), 16).with_shuffle(seed);
    let val = DataLoader::new(Arc::new(Subset::new(few, split.val)?), 100);
    let test = DataLoader::new(Arc::new(digits(&mnist_sample(Split::Test)?, 5..10, true)?), 200);
    let classes = 5;

    // The pretrained body with a fresh 5-class head (the file's head has 10 outputs).
    let options = ModelOptions { seed, ..ModelOptions::new((1, 28, 28), classes) };
    let model = FineTuneModel::pretrained(&model_name, &options, &weights, &[], seed)?;
    println!("\n{model_name} from {}: {}", weights.display(), model.report.summary());
    let total = model.store.num_parameters();

    // Rank-4 adapters on every layer before the head (in forward order; only those with a 2-D or
    // 4-D weight are adapted: convolutions and dense layers). The head is new, so it trains in
    // full (`train_also`). Batch norms, if any, stay on their pretrained statistics.
    let head = model.head.clone();
    let targets: Vec<String> =
        head.layers.iter().filter(|l| **l != head.head).flat_map(|l| [l.clone(), format!("{l}.*")]).collect();
    let cfg = LoraConfig { targets, train_also: vec![head.pattern()], seed, ..LoraConfig::new(4, &[]) };
    let mut lora = LoraModel::new(model, cfg)?;
    let trainable = lora.num_trainable();
    println!(
        "LoRA rank 4 on {} layers: {trainable} trainable of {total} parameters ({:.1} %; adapters {}, head {})",
        lora.num_targets(),
        trainable as f64 * 100.0 / total as f64,
        lora.adapters().num_parameters(),
        trainable - lora.adapters().num_parameters()
    );

    // Only the adapters and the head go to the optimizer.
    let epochs = 10;
    let lr = 3e-3;
    let mut adam =
        Adam::with_groups(vec![ParamGroup::all(lora.trainable())], AdamConfig { lr, ..AdamConfig::default() })?;
    let schedule = OneCycle::new(lr, epochs * train.num_batches());
    let fit = FitOptions { classes, ..FitOptions::new(epochs).with_schedule(&schedule) };
    ember::train::fit(&lora, &mut adam, &train, Some(&val), &fit, print_epoch)?;
    let adapted = evaluate(&lora, &test, classes)?.confusion.accuracy();
    println!("LoRA test accuracy {:.2} % on {} images", adapted * 100.0, test.dataset().len());

    // Merge: W += (alpha / rank) · B A, B reset to zero. The base model alone now gives the
    // adapted model's outputs; compare on the first 200 test images.
    let batch = test.epoch(0, &Device::Cpu).next().context("no test batch")??;
    let before = lora.forward_t(&batch.images, false)?;
    let merged_layers = lora.merge()?;
    let base = lora.into_base();
    let after = base.forward_t(&batch.images, false)?;
    let max_diff = (before - after)?.abs()?.max_all()?.to_scalar::<f32>()?;
    let merged = evaluate(&base, &test, classes)?.confusion.accuracy();
    println!(
        "merged {merged_layers} layers: largest logit difference {max_diff:.2e}; merged model's test accuracy {:.2} % \
         ({:.0} s)",
        merged * 100.0,
        started.elapsed().as_secs_f64()
    );
    anyhow::ensure!(max_diff < 1e-3, "the merged model differs from the adapted one by {max_diff}");
    Ok(())
}
