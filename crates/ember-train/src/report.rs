//! What one epoch of training did: the [`EpochReport`] the learner, its callbacks and the plots
//! share. Its own module, below both the learner and the callbacks, so neither imports the other
//! for it.

use serde::{Deserialize, Serialize};

use crate::ConfusionMatrix;

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Total epochs of the run.
    pub epochs: usize,
    /// Mean training loss over the epoch's batches (weighted by batch size).
    pub train_loss: f64,
    /// Training accuracy over the epoch (augmented samples, train mode; 0 for models without
    /// logits).
    pub train_accuracy: f64,
    /// Validation loss, when a validation set was given.
    pub val_loss: Option<f64>,
    /// Validation accuracy, when a validation set was given.
    pub val_accuracy: Option<f64>,
    /// Learning rate of the epoch's last step.
    pub learning_rate: f64,
    /// Wall-clock seconds for training and validation.
    pub seconds: f64,
    /// Validation predictions against labels.
    #[serde(skip)]
    pub val_confusion: Option<ConfusionMatrix>,
}

impl EpochReport {
    /// The value of a metric by name: `train_loss`, `train_accuracy`, `val_loss`,
    /// `val_accuracy`, `learning_rate`, or `gap` (train minus validation accuracy: how much
    /// the model fits its training images better than unseen ones).
    pub fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "train_loss" => Some(self.train_loss),
            "train_accuracy" => Some(self.train_accuracy),
            "val_loss" => self.val_loss,
            "val_accuracy" => self.val_accuracy,
            "learning_rate" => Some(self.learning_rate),
            "gap" => self.val_accuracy.map(|v| self.train_accuracy - v),
            _ => None,
        }
    }
}
