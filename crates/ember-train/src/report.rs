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

/// One line, as ember prints an epoch: `epoch  3/10  train_loss 0.4210  train_acc 0.8712
/// val_loss 0.3990  val_acc 0.8810  lr 1.00e-3  2.1s` (the validation figures only when there
/// were validation data).
impl std::fmt::Display for EpochReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "epoch {:>2}/{}  train_loss {:.4}  train_acc {:.4}",
            self.epoch, self.epochs, self.train_loss, self.train_accuracy
        )?;
        if let Some(loss) = self.val_loss {
            write!(f, "  val_loss {loss:.4}")?;
        }
        if let Some(acc) = self.val_accuracy {
            write!(f, "  val_acc {acc:.4}")?;
        }
        write!(f, "  lr {:.2e}  {:.1}s", self.learning_rate, self.seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_prints_on_one_line_with_validation_only_when_there_was_some() {
        let mut r = EpochReport {
            epoch: 3,
            epochs: 10,
            train_loss: 0.42104,
            train_accuracy: 0.87123,
            val_loss: None,
            val_accuracy: None,
            learning_rate: 1e-3,
            seconds: 2.14,
            val_confusion: None,
        };
        assert_eq!(r.to_string(), "epoch  3/10  train_loss 0.4210  train_acc 0.8712  lr 1.00e-3  2.1s");
        (r.val_loss, r.val_accuracy) = (Some(0.399), Some(0.881));
        assert_eq!(
            r.to_string(),
            "epoch  3/10  train_loss 0.4210  train_acc 0.8712  val_loss 0.3990  val_acc 0.8810  lr 1.00e-3  2.1s"
        );
    }
}
