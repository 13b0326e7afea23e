//! Models by name.

use candle_nn::{ModuleT, VarBuilder};

use crate::{Error, MnistCnn, Result};

/// What the zoo knows about a model without building it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInfo {
    /// Name used by [`build`] and `ember train --model`.
    pub name: &'static str,
    /// One-line description.
    pub summary: &'static str,
    /// Input shape of one sample, `(channels, height, width)`.
    pub input: (usize, usize, usize),
    /// Number of output classes.
    pub classes: usize,
}

/// Every model in the zoo.
pub const MODELS: &[ModelInfo] = &[ModelInfo {
    name: "mnist-cnn",
    summary: "the classic CNN: 2x (conv 3x3, ReLU, max-pool 2), dense 128, dense 10",
    input: (1, 28, 28),
    classes: 10,
}];

/// Builds the model called `name` with parameters under `vb`.
pub fn build(name: &str, vb: VarBuilder) -> Result<Box<dyn ModuleT + Send + Sync>> {
    match name {
        "mnist-cnn" => Ok(Box::new(MnistCnn::new(10, vb)?)),
        _ => Err(Error::UnknownModel {
            name: name.to_string(),
            known: MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", "),
        }),
    }
}
