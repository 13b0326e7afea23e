//! Transfer learning: a pretrained model from a safetensors file, a new head, the backbone
//! frozen, then unfrozen with discriminative learning rates.
//!
//! What it shows: `FineTuneModel::pretrained` builds a zoo model, loads every tensor of the file
//! into it and, as the new task has another number of classes, gives it a fresh head; a first
//! phase trains only that head (`train_with_frozen` with every other parameter frozen by name
//! pattern: the backbone stays bit-identical); a second phase unfreezes everything and trains
//! with discriminative learning rates (`discriminative_rates`: the first layers learn 100 times
//! slower than the head) and a one-cycle schedule. A network of the same shape trained from
//! scratch on the same images, for as many epochs, is the baseline.
//!
//! Run it:
//!
//! ```text
//! cargo run --release -p ember --example fine_tune
//! cargo run --release -p ember --example fine_tune -- --weights FILE --model NAME --data-dir DIR
//! ```
//!
//! Without arguments, it first makes the "pretrained" file: the zoo's `mnist-cnn` (10 outputs)
//! trained for 2 epochs on the digits 0-4 of the bundled MNIST sample, saved as safetensors. The
//! new task is the digits 5-9 (5 classes) from only 20 training images per digit. With arguments,
//! `FILE` (safetensors or a PyTorch `.pth`) holds weights of the zoo model `NAME` and `DIR` is any
//! dataset `ember train --data-dir` reads (an image folder, CIFAR, MNIST files, ...).
//!
//! What it prints (measured in release on 2 shared cores, about 7 s in all): the pretraining
//! (97.48 % on the test digits 0-4), what was loaded (`6 loaded; 2 skipped`: the old head), then
//! the test accuracy on the 968 test digits 5-9: 63.12 % after the head phase (20 epochs, backbone
//! frozen: features learnt on other digits only go so far), 89.26 % after the full phase (20
//! epochs), and 89.67 % for the same network trained from scratch for 40 epochs. On a problem this
//! small and this easy, transfer from digits 0-4 does not beat training from scratch; with real
//! pretrained weights (ImageNet) and photos it is the other way round (see ember-finetune's README).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ember::data::{mnist_sample, per_class_subset, ColorMode, DataSplits, SourceKind, SourceOptions, Split, Subset};
use ember::finetune::{discriminative_rates, everything_but_head, param_groups, train_with_frozen};
use ember::optim::OneCycle;
use ember::prelude::*;
use ember::train::evaluate;
use ember::zoo::Preprocessing;

mod common;
use common::{digits, flag_values, pretrain, print_epoch};

/// `--weights FILE --model NAME --data-dir DIR`, all three or none.
struct Args {
    weights: PathBuf,
    model: String,
    data_dir: PathBuf,
}

fn parse_args() -> Result<Option<Args>> {
    let mut given = flag_values(&["--weights", "--model", "--data-dir"], "--weights FILE --model NAME --data-dir DIR")?;
    let (weights, model, data_dir) = (given.remove("--weights"), given.remove("--model"), given.remove("--data-dir"));
    match (weights, model, data_dir) {
        (None, None, None) => Ok(None),
        (Some(weights), Some(model), Some(data_dir)) => {
            Ok(Some(Args { weights: PathBuf::from(weights), model, data_dir: PathBuf::from(data_dir) }))
        }
        _ => bail!("give all of --weights FILE --model NAME --data-dir DIR, or none"),
    }
}

/// The task: training (with a validation split), validation and test sets, the class count,
/// and the model's input.
struct Task {
    train: DataLoader,
    val: DataLoader,
    test: DataLoader,
    classes: usize,
    input: (usize, usize, usize),
}

/// Training images per digit of the new task (a tenth of them validate): transfer matters
/// most when there are few.
const PER_CLASS: usize = 20;

/// The digits 5-9 of the bundled sample, `PER_CLASS` training images per digit.
fn digits_task(seed: u64) -> Result<Task> {
    let train = digits(&mnist_sample(Split::Train)?, 5..10, true)?;
    let few: Arc<dyn Dataset> = Arc::new(train);
    let few = Arc::new(Subset::new(few.clone(), per_class_subset(few.as_ref(), PER_CLASS, seed)?)?);
    let test = Arc::new(digits(&mnist_sample(Split::Test)?, 5..10, true)?);
    let split = ember::data::stratified_split(few.as_ref(), 0.1, seed)?;
    Ok(Task {
        train: DataLoader::new(Arc::new(Subset::new(few.clone(), split.train)?), 16).with_shuffle(seed),
        val: DataLoader::new(Arc::new(Subset::new(few, split.val)?), 100),
        test: DataLoader::new(test, 200),
        classes: 5,
        input: (1, 28, 28),
    })
}

/// The user's data read as `model`'s input: resized (folders: random resized crops and flips
/// for training, resize and centre crop for evaluation), normalised as its weights expect.
fn user_task(dir: &Path, model: &str, seed: u64) -> Result<Task> {
    let info = ember::zoo::info(model)?;
    let (c, side, _) = info.input;
    let options = SourceOptions { color: ColorMode::for_channels(c), ..SourceOptions::default() };
    let mut data = DataSplits::open_path(None, dir, &options)?;
    data.carve_validation(0.1, seed)?;
    let p: Preprocessing = info.preprocessing;
    let (train_ops, eval_ops) = if data.kind == SourceKind::Folder {
        (format!("resized-crop:{side},hflip"), format!("resize-short:{},center-crop:{side}", p.resize_for(side as u32)))
    } else {
        (format!("resize:{side}"), format!("resize:{side}"))
    };
    let loader = |set: Arc<dyn Dataset>, batch: usize, ops: &str| -> Result<DataLoader> {
        let ops = Arc::new(Pipeline::parse(ops)?);
        Ok(DataLoader::new(set, batch)
            .with_color(ColorMode::for_channels(c))
            .with_normalization(&p.mean_for(c), &p.std_for(c))?
            .with_transform(ops.clone())
            .with_rgb_transform(ops)
            .with_workers(1))
    };
    let val = data.val.clone().context("no validation split")?;
    let test = data.test.clone().unwrap_or_else(|| val.clone());
    if data.test.is_none() {
        println!("note: {} has no test split; the validation images are scored as the test", dir.display());
    }
    Ok(Task {
        train: loader(data.train.clone(), 32, &train_ops)?.with_shuffle(seed),
        val: loader(val, 64, &eval_ops)?,
        test: loader(test, 64, &eval_ops)?,
        classes: data.classes(),
        input: info.input,
    })
}

fn test_accuracy(model: &dyn ModuleT, task: &Task) -> Result<f64> {
    Ok(evaluate(model, &task.test, task.classes)?.confusion.accuracy() * 100.0)
}

/// Trains every parameter of `model` for `epochs` epochs with Adam and a one-cycle schedule
/// peaking at `lr`, parameters matching a pattern of `rates` at that pattern's rate.
fn train_all(model: &FineTuneModel, rates: &[(String, f64)], epochs: usize, lr: f64, task: &Task) -> Result<()> {
    let mut adam =
        Adam::with_groups(param_groups(&model.store, &[], rates), AdamConfig { lr, ..AdamConfig::default() })?;
    let schedule = OneCycle::new(lr, epochs * task.train.num_batches());
    let options = FitOptions { classes: task.classes, ..FitOptions::new(epochs).with_schedule(&schedule) };
    ember::train::fit(model, &mut adam, &task.train, Some(&task.val), &options, print_epoch)?;
    Ok(())
}

fn main() -> Result<()> {
    let started = Instant::now();
    let seed = 42;
    let scratch = tempfile::tempdir()?;
    let (weights, model_name, task) = match parse_args()? {
        Some(args) => {
            let task = user_task(&args.data_dir, &args.model, seed)?;
            (args.weights, args.model, task)
        }
        None => {
            let path = scratch.path().join("pretrained.safetensors");
            pretrain(&path)?;
            (path, "mnist-cnn".to_string(), digits_task(seed)?)
        }
    };
    let (head_epochs, epochs) = (20, 20);
    let options = ModelOptions { seed, ..ModelOptions::new(task.input, task.classes) };

    // Every tensor of the file must fit the model except the head, whose shape differs (10
    // outputs in the file, 5 classes now): the head keeps a fresh initialisation.
    let mut model = FineTuneModel::pretrained(&model_name, &options, &weights, &[], seed)?;
    println!(
        "\n{model_name} from {}: {}; new head `{}` for {} classes",
        weights.display(),
        model.report.summary(),
        model.head.head,
        task.classes
    );
    println!("before training: {:.2} % on the test set", test_accuracy(&model, &task)?);

    // Phase 1: only the head learns. `everything_but_head` lists every other parameter's name;
    // they go into a frozen optimizer group and stay bit-identical.
    let frozen = everything_but_head(&model);
    println!("phase 1: head only, {} tensors frozen", frozen.len());
    let mut on_epoch = print_epoch;
    train_with_frozen(&mut model, &frozen, &task.train, Some(&task.val), head_epochs, 1e-2, 0.0, &mut on_epoch)?;
    let after_head = test_accuracy(&model, &task)?;
    println!("after phase 1 (backbone frozen): {after_head:.2} % on the test set");

    // Phase 2: everything learns, the layers nearest the input 10 times slower than the head
    // (they hold the most general features), in 3 groups of layers.
    let rates = discriminative_rates(&model.head, &model.store, 3, 3e-3, 10.0);
    let shown: Vec<String> = rates.iter().map(|(p, lr)| format!("{p} {lr:.0e}")).collect();
    println!("phase 2: unfrozen, discriminative rates {}", shown.join(", "));
    train_all(&model, &rates, epochs, 3e-3, &task)?;
    let after_all = test_accuracy(&model, &task)?;
    println!("after phase 2 (unfrozen): {after_all:.2} % on the test set");

    // The baseline: the same network from random weights, as many epochs in all.
    let fresh = FineTuneModel::scratch(&model_name, &options, seed)?;
    println!("baseline: {model_name} from scratch, {} epochs", head_epochs + epochs);
    train_all(&fresh, &[], head_epochs + epochs, 3e-3, &task)?;
    let baseline = test_accuracy(&fresh, &task)?;

    println!(
        "\ntest accuracy: head only {after_head:.2} %, fine-tuned {after_all:.2} %, from scratch {baseline:.2} % \
         ({:.0} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
