//! Learning-rate schedules, each reproducing PyTorch's `torch.optim.lr_scheduler` counterpart.
//!
//! A [`crate::Schedule`] maps a step index (optimizer step or epoch: call it per batch or per
//! epoch) to a learning rate, so it holds no state and resumes from the step count alone.
//! [`ReduceOnPlateau`] reacts to a metric instead and keeps (serialisable) state.

mod cosine_annealing;
mod cosine_warm_restarts;
mod exponential;
mod linear_warmup;
mod lr_finder;
mod multi_step;
mod one_cycle;
mod reduce_on_plateau;
mod step;

pub use cosine_annealing::CosineAnnealing;
pub use cosine_warm_restarts::CosineWarmRestarts;
pub use exponential::Exponential;
pub use linear_warmup::LinearWarmup;
pub use lr_finder::{lr_find, LrFinder, LrFinderResult};
pub use multi_step::MultiStep;
pub use one_cycle::OneCycle;
pub use reduce_on_plateau::{PlateauMode, ReduceOnPlateau};
pub use step::StepDecay;
