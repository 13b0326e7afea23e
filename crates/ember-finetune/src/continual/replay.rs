//! The rehearsal memory: a few examples of every class seen, kept by reservoir sampling.

use std::collections::BTreeMap;

use ember_data::Dataset;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{Error, Result};

/// Up to `per_class` examples of every class, each a uniform sample of the examples of that
/// class observed so far (Vitter's reservoir algorithm R, one reservoir per class). Holds
/// indices into the dataset the tasks are drawn from; one seed gives one memory.
#[derive(Debug, Clone)]
pub struct ReplayBuffer {
    per_class: usize,
    rng: StdRng,
    seen: BTreeMap<u32, usize>,
    slots: BTreeMap<u32, Vec<usize>>,
}

impl ReplayBuffer {
    /// An empty memory of `per_class` examples per class; fails when `per_class` is 0 (a
    /// rehearsal without memory is naive fine-tuning).
    pub fn new(per_class: usize, seed: u64) -> Result<Self> {
        if per_class == 0 {
            return Err(Error::invalid(
                "replay buffer",
                "0 images per class: rehearsal needs at least one (use the naive method for none)",
            ));
        }
        Ok(Self { per_class, rng: StdRng::seed_from_u64(seed), seen: BTreeMap::new(), slots: BTreeMap::new() })
    }

    /// Offers example `index` of class `label`: kept while its class's reservoir has room, then
    /// with probability `per_class / n` (replacing a random slot), `n` being the number of
    /// examples of that class offered so far.
    pub fn observe(&mut self, index: usize, label: u32) {
        let n = self.seen.entry(label).or_insert(0);
        *n += 1;
        let slots = self.slots.entry(label).or_default();
        if slots.len() < self.per_class {
            slots.push(index);
        } else {
            let j = self.rng.random_range(0..*n);
            if j < self.per_class {
                slots[j] = index;
            }
        }
    }

    /// Offers the examples of `data` at `indices`, in that order.
    pub fn observe_all(&mut self, data: &dyn Dataset, indices: &[usize]) -> Result<()> {
        for &i in indices {
            self.observe(i, data.label(i)?);
        }
        Ok(())
    }

    /// The examples kept, class by class (in class order, each class's in slot order).
    pub fn indices(&self) -> Vec<usize> {
        self.slots.values().flatten().copied().collect()
    }

    /// How many examples each class holds.
    pub fn class_counts(&self) -> BTreeMap<u32, usize> {
        self.slots.iter().map(|(c, s)| (*c, s.len())).collect()
    }

    /// The memory's capacity per class.
    pub fn per_class(&self) -> usize {
        self.per_class
    }

    /// Examples kept in all.
    pub fn len(&self) -> usize {
        self.slots.values().map(Vec::len).sum()
    }

    /// Whether nothing is kept yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
