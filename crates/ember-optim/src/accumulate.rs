//! Gradient accumulation over several micro-batches.

use candle_core::backprop::GradStore;
use candle_core::{Result, Var};

/// Sums the gradients of `k` micro-batches and hands back their mean, so `k` batches of `b`
/// samples (with a mean loss each) update the model as one batch of `k * b` would.
#[derive(Debug)]
pub struct GradAccumulator {
    params: Vec<Var>,
    every: usize,
    seen: usize,
    sums: GradStore,
}

impl GradAccumulator {
    /// Accumulates gradients of `params` over `every` micro-batches (at least 1).
    pub fn new(params: Vec<Var>, every: usize) -> Self {
        Self { params, every: every.max(1), seen: 0, sums: GradStore::default() }
    }

    /// Adds one micro-batch's gradients. Returns the mean gradients once `every` micro-batches
    /// have been added (and starts over), `None` before that.
    pub fn add(&mut self, grads: &GradStore) -> Result<Option<GradStore>> {
        for p in &self.params {
            if let Some(g) = grads.get(p) {
                let sum = match self.sums.get(p) {
                    Some(s) => (s + g)?,
                    None => g.clone(),
                };
                self.sums.insert(p, sum);
            }
        }
        self.seen += 1;
        if self.seen < self.every {
            return Ok(None);
        }
        let mut mean = GradStore::default();
        for p in &self.params {
            if let Some(s) = self.sums.remove(p) {
                mean.insert(p, (s / self.seen as f64)?);
            }
        }
        self.seen = 0;
        Ok(Some(mean))
    }
}
