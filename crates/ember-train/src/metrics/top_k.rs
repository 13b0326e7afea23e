//! Top-k accuracy.

use candle_core::{Result, Tensor};

/// Fraction of samples whose true class is among the `k` highest scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopKAccuracy {
    k: usize,
    hits: u64,
    total: u64,
}

impl TopKAccuracy {
    /// Counts a hit when the label is among the top `k` (at least 1).
    pub fn new(k: usize) -> Self {
        Self { k: k.max(1), hits: 0, total: 0 }
    }

    /// Adds one batch: `scores` `(b, classes)`, `labels` `(b,)` u32. Ties are broken towards
    /// the lower class index, like a stable descending sort.
    pub fn add(&mut self, scores: &Tensor, labels: &Tensor) -> Result<()> {
        let scores = scores.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?;
        let labels = labels.to_vec1::<u32>()?;
        for (row, &label) in scores.iter().zip(&labels) {
            let Some(&target) = row.get(label as usize) else { continue };
            // Rank of the label: classes scoring higher, plus equal scores at lower indices.
            let rank =
                row.iter().enumerate().filter(|&(c, &s)| s > target || (s == target && c < label as usize)).count();
            self.hits += u64::from(rank < self.k);
        }
        self.total += labels.len() as u64;
        Ok(())
    }

    /// The fraction so far (0 when empty).
    pub fn value(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.hits as f64 / self.total as f64
        }
    }
}
