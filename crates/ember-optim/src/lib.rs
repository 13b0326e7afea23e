//! Optimizers and learning-rate schedules that follow their published update rules.
//!
//! Optimizers work on named parameters (`candle_core::Var`s with their `state_dict`-style
//! names), keep their state as named tensors ([`OptimizerState`]) so training can be saved and
//! resumed, and take their learning rate (and momentum) from a schedule each step.
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
//! # Ok::<(), candle_core::Error>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod adam;
mod one_cycle;
mod optimizer;

pub use adam::{Adam, AdamConfig};
pub use one_cycle::OneCycle;
pub use optimizer::{Optimizer, OptimizerState, Schedule};
