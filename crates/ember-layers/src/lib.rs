//! Layers and losses for ember, on candle-nn.
//!
//! Every layer is built from a [`candle_nn::VarBuilder`] and names its parameters the way
//! PyTorch's `state_dict` does (`conv1.weight`, `fc2.bias`), so weights round-trip with
//! checkpoints exported from PyTorch. Layers compute through `ember-kernels`, never through
//! candle's ops directly, so a faster kernel can be switched in without touching callers.
//! Parameters come from a [`ParamStore`], which draws initial values from a seeded RNG.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::Module;
//! use ember_layers::{Conv2d, Conv2dConfig, ParamStore};
//!
//! let store = ParamStore::new(42, &Device::Cpu);
//! let conv = Conv2d::new(&Conv2dConfig::new(1, 8, 3), store.var_builder(DType::F32).pp("conv1"))?;
//! let y = conv.forward(&Tensor::zeros((2, 1, 28, 28), DType::F32, &Device::Cpu)?)?;
//! assert_eq!(y.dims(), &[2, 8, 26, 26]);
//! assert_eq!(store.names(), vec!["conv1.bias", "conv1.weight"]);
//! # Ok::<(), candle_core::Error>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod activation;
mod conv2d;
mod flatten;
mod linear;
pub mod loss;
mod max_pool2d;
mod mode;
mod param_store;

pub use activation::Activation;
pub use conv2d::{Conv2d, Conv2dConfig};
pub use flatten::Flatten;
pub use linear::Linear;
pub use max_pool2d::MaxPool2d;
pub use mode::Mode;
pub use param_store::ParamStore;
