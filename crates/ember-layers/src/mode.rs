//! Train or eval mode, passed down through a model's forward pass.

/// Whether a forward pass is for training (dropout active, batch norm uses and updates batch
/// statistics) or for evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Training: stochastic layers are active.
    Train,
    /// Evaluation: deterministic behaviour, running statistics.
    Eval,
}

impl Mode {
    /// `true` in [`Mode::Train`]; the `train` flag of candle's `ModuleT::forward_t`.
    pub fn is_train(self) -> bool {
        self == Mode::Train
    }
}

impl From<bool> for Mode {
    fn from(train: bool) -> Self {
        if train {
            Mode::Train
        } else {
            Mode::Eval
        }
    }
}
