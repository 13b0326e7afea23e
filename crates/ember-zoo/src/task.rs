//! What a zoo model is for: the [`Task`] its registry entry names.

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Image classification: logits `(b, classes)`.
    Classification,
    /// Generative model (a VAE): trained with `ember vae train`, not `ember train`.
    Generation,
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Task::Classification => "classification",
            Task::Generation => "generation",
        })
    }
}
