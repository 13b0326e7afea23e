//! Ensembles of any classifiers: mean of probabilities, weighted mean, or majority vote, with
//! per-member and ensemble metrics from one pass over the data.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::ModuleT;
use ember_data::DataLoader;
use ember_train::ConfusionMatrix;

use crate::{Error, Result};

/// How member predictions are combined.
#[derive(Debug, Clone, PartialEq)]
pub enum Combine {
    /// The mean of the members' softmax probabilities.
    Mean,
    /// A weighted mean of probabilities (weights are normalised to sum to 1).
    Weighted(Vec<f64>),
    /// Each member votes for its top class; ties go to the class with the higher mean
    /// probability.
    Vote,
}

/// Several classifiers used as one. As a `ModuleT` it returns the log of the combined class
/// probabilities (so `argmax` is the ensemble's prediction and cross-entropy its loss);
/// members always run in eval mode.
pub struct Ensemble {
    members: Vec<Box<dyn ModuleT + Send + Sync>>,
    combine: Combine,
}

impl std::fmt::Debug for Ensemble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ensemble").field("members", &self.members.len()).field("combine", &self.combine).finish()
    }
}

impl Ensemble {
    /// An ensemble of `members` (at least one); weights must match the members in number and
    /// be non-negative with a positive sum.
    pub fn new(members: Vec<Box<dyn ModuleT + Send + Sync>>, combine: Combine) -> Result<Self> {
        if members.is_empty() {
            return Err(Error::invalid("ensemble", "needs at least one member"));
        }
        if let Combine::Weighted(w) = &combine {
            if w.len() != members.len() || w.iter().any(|v| v.is_nan() || *v < 0.0) || w.iter().sum::<f64>() <= 0.0 {
                return Err(Error::invalid(
                    "ensemble",
                    format!(
                        "{} weights {w:?} for {} members (need one non-negative weight each, positive sum)",
                        w.len(),
                        members.len()
                    ),
                ));
            }
        }
        Ok(Self { members, combine })
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members (never, see [`Ensemble::new`]).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Each member's probabilities `(b, classes)` and the combined ones.
    pub fn probabilities(&self, xs: &Tensor) -> candle_core::Result<(Vec<Tensor>, Tensor)> {
        let probs: Vec<Tensor> = self
            .members
            .iter()
            .map(|m| candle_nn::ops::softmax(&m.forward_t(xs, false)?.detach(), D::Minus1))
            .collect::<candle_core::Result<_>>()?;
        let combined = combine(&probs, &self.combine)?;
        Ok((probs, combined))
    }
}

/// Combines member probabilities `(b, classes)` as `how` says.
pub fn combine(probs: &[Tensor], how: &Combine) -> candle_core::Result<Tensor> {
    let n = probs.len() as f64;
    let mean = (Tensor::stack(probs, 0)?.sum(0)? / n)?;
    match how {
        Combine::Mean => Ok(mean),
        Combine::Weighted(w) => {
            let total: f64 = w.iter().sum();
            let mut acc = probs[0].zeros_like()?;
            for (p, wi) in probs.iter().zip(w) {
                acc = (acc + (p * (wi / total))?)?;
            }
            Ok(acc)
        }
        Combine::Vote => {
            let classes = mean.dim(1)?;
            let mut votes = mean.zeros_like()?;
            for p in probs {
                let top = p.argmax_keepdim(1)?;
                let onehot = Tensor::arange(0u32, classes as u32, p.device())?
                    .unsqueeze(0)?
                    .broadcast_as(p.shape())?
                    .eq(&top.broadcast_as(p.shape())?)?
                    .to_dtype(p.dtype())?;
                votes = (votes + onehot)?;
            }
            // Vote shares plus a tie-breaker far smaller than one vote; still sums to 1.
            let eps = 1e-3;
            (votes + (mean * eps)?)? / (n + eps)
        }
    }
}

impl ModuleT for Ensemble {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        self.probabilities(xs)?.1.clamp(1e-12, 1.0)?.log()
    }
}

/// Accuracy of every member and of the ensemble.
#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleReport {
    /// Each member's predictions against the labels.
    pub members: Vec<ConfusionMatrix>,
    /// The ensemble's.
    pub ensemble: ConfusionMatrix,
}

impl EnsembleReport {
    /// The best member's accuracy.
    pub fn best_member_accuracy(&self) -> f64 {
        self.members.iter().map(|m| m.accuracy()).fold(0.0, f64::max)
    }
}

/// Runs the ensemble over `data` once, scoring each member and the ensemble; batches are built
/// on `device`, the members' device.
pub fn evaluate_ensemble(
    ensemble: &Ensemble,
    data: &DataLoader,
    classes: usize,
    device: &Device,
) -> Result<EnsembleReport> {
    let mut members = vec![ConfusionMatrix::new(classes); ensemble.len()];
    let mut combined = ConfusionMatrix::new(classes);
    for batch in data.epoch(0, device) {
        let batch = batch?;
        let labels = batch.labels.to_vec1::<u32>()?;
        let (probs, mixed) = ensemble.probabilities(&batch.images)?;
        for (matrix, p) in members.iter_mut().chain(std::iter::once(&mut combined)).zip(probs.iter().chain([&mixed])) {
            for (t, pred) in labels.iter().zip(p.argmax(1)?.to_dtype(DType::U32)?.to_vec1::<u32>()?) {
                matrix.add(*t as usize, pred as usize);
            }
        }
    }
    Ok(EnsembleReport { members, ensemble: combined })
}
