//! Train/validation splits, k-fold indices and few-shot subsets, all seeded.

use std::collections::BTreeMap;

use ember_augment::sample_rng;
use rand::seq::SliceRandom;

use crate::{Dataset, Error, Result};

/// Index sets of a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitIndices {
    /// Training indices.
    pub train: Vec<usize>,
    /// Validation indices.
    pub val: Vec<usize>,
}

fn check_fraction(fraction: f64) -> Result<()> {
    if (0.0..1.0).contains(&fraction) {
        Ok(())
    } else {
        Err(Error::Invalid {
            what: "split".into(),
            detail: format!("validation fraction {fraction} must be in [0, 1)"),
        })
    }
}

/// Fails unless the split leaves examples on the training side, and on the validation side
/// when one was asked for: a split that empties either side is a setting that cannot work.
fn check_sides(split: SplitIndices, val_fraction: f64) -> Result<SplitIndices> {
    if split.train.is_empty() || (val_fraction > 0.0 && split.val.is_empty()) {
        return Err(Error::Invalid {
            what: "split".into(),
            detail: format!(
                "a validation fraction of {val_fraction} of {} examples leaves {} for training and {} for \
                 validation; each side needs at least one",
                split.train.len() + split.val.len(),
                split.train.len(),
                split.val.len()
            ),
        });
    }
    Ok(split)
}

fn shuffled(n: usize, seed: u64, stream: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut sample_rng(seed, stream, u64::MAX - 1));
    order
}

/// A random split of `n` indices: `round(n * val_fraction)` go to validation.
pub fn random_split(n: usize, val_fraction: f64, seed: u64) -> Result<SplitIndices> {
    check_fraction(val_fraction)?;
    let order = shuffled(n, seed, 0);
    let n_val = (n as f64 * val_fraction).round() as usize;
    let (val, train) = order.split_at(n_val);
    let (mut train, mut val) = (train.to_vec(), val.to_vec());
    train.sort_unstable();
    val.sort_unstable();
    check_sides(SplitIndices { train, val }, val_fraction)
}

/// Groups indices by label (reading labels through [`Dataset::label`]).
fn by_class(data: &dyn Dataset) -> Result<BTreeMap<u32, Vec<usize>>> {
    let mut classes: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for i in 0..data.len() {
        classes.entry(data.label(i)?).or_default().push(i);
    }
    Ok(classes)
}

/// A split that keeps every class's share: each class contributes `round(count * val_fraction)`
/// of its examples to validation.
pub fn stratified_split(data: &dyn Dataset, val_fraction: f64, seed: u64) -> Result<SplitIndices> {
    check_fraction(val_fraction)?;
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (class, mut members) in by_class(data)? {
        members.shuffle(&mut sample_rng(seed, class as u64, u64::MAX - 2));
        let n_val = (members.len() as f64 * val_fraction).round() as usize;
        if n_val == members.len() {
            return Err(Error::Invalid {
                what: "split".into(),
                detail: format!(
                    "a validation fraction of {val_fraction} moves all {} examples of class {class} to validation, \
                     leaving none to train on",
                    members.len()
                ),
            });
        }
        val.extend_from_slice(&members[..n_val]);
        train.extend_from_slice(&members[n_val..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    check_sides(SplitIndices { train, val }, val_fraction)
}

/// `k` folds over `n` shuffled indices: fold `i` validates on the `i`-th slice and trains on the
/// rest; every index is validated on exactly once.
pub fn k_fold(n: usize, k: usize, seed: u64) -> Result<Vec<SplitIndices>> {
    if k < 2 || k > n {
        return Err(Error::Invalid {
            what: "k-fold".into(),
            detail: format!("{k} folds over {n} examples (need 2 <= k <= n)"),
        });
    }
    let order = shuffled(n, seed, 1);
    let folds = (0..k)
        .map(|i| {
            let (lo, hi) = (i * n / k, (i + 1) * n / k);
            let mut val = order[lo..hi].to_vec();
            let mut train: Vec<usize> = order[..lo].iter().chain(&order[hi..]).copied().collect();
            val.sort_unstable();
            train.sort_unstable();
            SplitIndices { train, val }
        })
        .collect();
    Ok(folds)
}

/// Up to `per_class` randomly chosen examples of every class (e.g. "100 images per class" for
/// few-shot experiments), sorted.
pub fn per_class_subset(data: &dyn Dataset, per_class: usize, seed: u64) -> Result<Vec<usize>> {
    if per_class == 0 || data.is_empty() {
        return Err(Error::Invalid {
            what: "per-class subset".into(),
            detail: format!("{per_class} examples per class of {} examples selects nothing", data.len()),
        });
    }
    let mut chosen = Vec::new();
    for (class, mut members) in by_class(data)? {
        members.shuffle(&mut sample_rng(seed, class as u64, u64::MAX - 3));
        chosen.extend(members.into_iter().take(per_class));
    }
    chosen.sort_unstable();
    Ok(chosen)
}
