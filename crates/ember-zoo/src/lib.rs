//! The ember model zoo.
//!
//! Models are built by name from a [`candle_nn::VarBuilder`] (usually an
//! `ember_layers::ParamStore`'s), with parameter names equal to the keys of the matching
//! PyTorch model's `state_dict`.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::ModuleT;
//! use ember_layers::ParamStore;
//!
//! let store = ParamStore::new(0, &Device::Cpu);
//! let model = ember_zoo::build("mnist-cnn", store.var_builder(DType::F32))?;
//! let logits = model.forward_t(&Tensor::zeros((4, 1, 28, 28), DType::F32, &Device::Cpu)?, false)?;
//! assert_eq!(logits.dims(), &[4, 10]);
//! assert_eq!(store.num_parameters(), 225_034);
//! # Ok::<(), ember_zoo::Error>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod error;
mod mnist_cnn;
mod registry;

pub use error::{Error, Result};
pub use mnist_cnn::MnistCnn;
pub use registry::{build, ModelInfo, MODELS};
