//! What the fine-tuning examples (`fine_tune`, `lora`) share: their `--flag value` arguments,
//! the digit tasks cut from the bundled MNIST sample, and the stand-in for weights downloaded
//! from a model hub.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ember::data::{mnist_sample, LabelledImages, Split};
use ember::prelude::*;
use ember::train::callback::OnEpoch;
use ember::train::{checkpoint, evaluate, EpochReport};

/// The command line's `--flag value` pairs, each flag one of `flags` (`usage` shows them in
/// the error for any other); a repeated flag keeps its last value.
pub fn flag_values(flags: &[&str], usage: &str) -> Result<HashMap<String, String>> {
    let mut values = HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        if !flags.contains(&flag.as_str()) {
            bail!("unknown argument {flag} (expected {usage})");
        }
        values.insert(flag, value);
    }
    Ok(values)
}

/// The digits of `keep` from `set`; with `relabel`, labelled from 0 (`5..10` becomes 0-4, a
/// 5-class dataset), else with their own labels among 10 classes.
pub fn digits(set: &LabelledImages, keep: Range<u8>, relabel: bool) -> Result<LabelledImages> {
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for (i, &label) in set.labels().iter().enumerate().filter(|(_, l)| keep.contains(l)) {
        pixels.extend_from_slice(set.pixels(i));
        labels.push(if relabel { label - keep.start } else { label });
    }
    let classes = if relabel { keep.len() } else { set.classes() };
    Ok(LabelledImages::new(pixels, labels, set.height(), set.width(), classes)?)
}

/// Prints an epoch's line, indented under the phase it belongs to.
pub fn print_epoch(r: &EpochReport) {
    println!("  {r}");
}

/// Trains a fresh `mnist-cnn` on the digits 0-4 and saves it to `path`: the stand-in for
/// weights downloaded from a model hub.
pub fn pretrain(path: &Path) -> Result<()> {
    let train = Arc::new(digits(&mnist_sample(Split::Train)?, 0..5, false)?);
    let test = Arc::new(digits(&mnist_sample(Split::Test)?, 0..5, false)?);
    let store = ParamStore::new(7, &Device::Cpu);
    let model = ember::zoo::build("mnist-cnn", store.var_builder(DType::F32))?;
    let mut adam = Adam::new(store.vars(), AdamConfig { lr: 2e-3, ..AdamConfig::default() })?;
    let loader = DataLoader::new(train.clone(), 64).with_shuffle(7).with_workers(1);
    println!("pretraining mnist-cnn on the {} training digits 0-4:", train.len());
    Learner::new(model.as_ref(), &store, &mut adam).with_callback(OnEpoch(print_epoch)).fit(
        &loader,
        None,
        &FitOptions::new(2),
    )?;
    let acc = evaluate(model.as_ref(), &DataLoader::new(test, 200), 10)?.confusion.accuracy();
    println!("pretrained: {:.2} % on the test digits 0-4; saved {}", acc * 100.0, path.display());
    checkpoint::save(&store, path)?;
    Ok(())
}
