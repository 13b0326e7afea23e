//! Optimizers and learning-rate schedules that follow their published update rules.
//!
//! Every optimizer — [`Sgd`] (momentum, dampening, Nesterov), [`Adam`] (AMSGrad, AdamW),
//! [`RmsProp`] (centred, momentum), [`Adagrad`] — reproduces PyTorch's `torch.optim` step for
//! step, works on named parameters split into [`ParamGroup`]s (own learning rate, weight decay,
//! momentum; frozen groups untouched and stateless), updates each CPU parameter in one fused,
//! in-place, allocation-free pass (a parameter on a GPU takes the same update in candle tensor
//! ops, [`UpdatePath`]), and saves its state as named tensors ([`OptimizerState`],
//! safetensors + JSON, the same on either path) so training resumes bit for bit. Schedules ([`schedule`]) reproduce
//! `torch.optim.lr_scheduler`. A run names its rule and schedule with [`OptimizerConfig`] and
//! [`ScheduleConfig`]: serde values (a TOML file, a saved run, flags) that validate themselves
//! and build the optimizer and schedule, with ember's recipe defaults.
//!
//! ```
//! use candle_core::{Device, Tensor, Var};
//! use ember_optim::{Adam, AdamConfig, OneCycle, Optimizer, Schedule};
//!
//! let w = Var::new(&[3.0f32, -2.0], &Device::Cpu)?;
//! let mut opt = Adam::new(vec![("w".to_string(), w.clone())], AdamConfig::default())?;
//! let schedule = OneCycle::new(0.3, 100);
//! for step in 0..100 {
//!     schedule.apply(step, &mut opt);
//!     let loss = w.as_tensor().sqr()?.sum_all()?; // minimise |w|^2
//!     opt.step(&loss.backward()?)?;
//! }
//! assert!(w.as_tensor().abs()?.max(0)?.to_scalar::<f32>()? < 0.1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod accumulate;
mod adagrad;
mod adam;
mod check;
mod clip;
mod config;
mod error;
mod fused;
mod optimizer;
mod param_groups;
mod real;
mod rmsprop;
pub mod schedule;
mod sgd;

pub use accumulate::GradAccumulator;
pub use adagrad::{Adagrad, AdagradConfig};
pub use adam::{Adam, AdamConfig};
pub use clip::{clip_grad_norm, clip_grad_value};
pub use config::{CosineConfig, OneCycleConfig, OptimizerConfig, OptimizerKind, ScheduleConfig, StepConfig};
/// Shell-style name patterns, as parameter groups match them (the one copy lives in ember-kernels).
pub use ember_kernels::glob_match;
pub use error::{Error, Result};
pub use fused::{Defaults, FusedOptimizer, Hyper, TensorUpdate, UpdatePath, UpdateRule};
pub use optimizer::{GroupRecord, Optimizer, OptimizerMeta, OptimizerState, Schedule};
pub use param_groups::{GroupOptions, ParamGroup, ParamGroups};
pub use real::Real;
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use schedule::OneCycle;
pub use sgd::{Sgd, SgdConfig};
