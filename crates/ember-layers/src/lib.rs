//! Layers and losses for ember, on candle-nn.
//!
//! Every layer is built from a [`candle_nn::VarBuilder`] and names its parameters the way
//! PyTorch's `state_dict` does (`conv1.weight`, `fc2.bias`), so weights round-trip with
//! checkpoints exported from PyTorch. Layers compute through `ember-kernels`, never through
//! candle's ops directly, so a faster kernel can be switched in without touching callers.
//! Parameters come from a [`ParamStore`], which draws initial values from a seeded RNG and keeps
//! buffers (batch norm's running statistics) apart from trainable parameters.
//!
//! Layers: [`Conv1d`], [`Conv2d`] (stride, padding incl. "same" — Keras's when strided —,
//! dilation, groups, depthwise), [`ConvTranspose2d`], [`MaxPool2d`], [`AvgPool2d`],
//! [`AdaptiveAvgPool2d`], [`GlobalAvgPool2d`], [`Flatten`], [`Linear`], [`BatchNorm`],
//! [`LayerNorm`], [`GroupNorm`], [`Dropout`], [`Dropout2d`], [`Embedding`], [`Rnn`], [`Lstm`],
//! [`Gru`], [`Activation`] and the [`Sequential`] container; losses live in [`loss`]. Layers
//! whose train and eval behaviour differ implement candle's `ModuleT` (see [`Mode`]); the others
//! implement `Module`.
//!
//! Every layer is also a [`ModuleTree`]: it reports itself, its parameters ([`Param`], which can
//! be frozen) and its buffers ([`Buffer`]) under their `state_dict` paths, and a struct of
//! layers gets the same with `#[derive(ModuleTree)]`. Generic code walks that tree for any
//! model: [`split_state`], [`trainable_vars`], [`tree_summary`], [`freeze`].
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
//!
//! // PyTorch-style names inside a Sequential: `features.0.weight`, `features.1.running_mean`.
//! use candle_nn::ModuleT;
//! use ember_layers::{Activation, BatchNorm, BatchNormConfig, Sequential};
//! let features = Sequential::builder(store.var_builder(DType::F32).pp("features"))
//!     .layer(|vb| Conv2d::new(&Conv2dConfig::new(1, 4, 3), vb))?
//!     .layer(|vb| BatchNorm::new(&BatchNormConfig::new(4), vb))?
//!     .stateless(Activation::Relu)
//!     .build();
//! let y = features.forward_t(&Tensor::ones((2, 1, 8, 8), DType::F32, &Device::Cpu)?, true)?;
//! assert_eq!(y.dims(), &[2, 4, 6, 6]);
//! assert_eq!(store.buffer_names(), vec!["features.1.running_mean", "features.1.running_var"]);
//!
//! // Your own model: its tree has the paths PyTorch would give the same fields.
//! use ember_layers::{freeze, tree_summary, Linear, ModuleTree};
//! #[derive(ModuleTree)]
//! struct Net {
//!     features: Sequential,
//!     head: Linear,
//! }
//! let mut net = Net { features, head: Linear::new(4, 2, true, store.var_builder(DType::F32).pp("head"))? };
//! let summary = tree_summary(&net);
//! let children: Vec<_> = summary.children.iter().map(|c| (c.name.as_str(), c.params)).collect();
//! assert_eq!(children, [("features", 4 * 9 + 4 + 4 + 4), ("head", 4 * 2 + 2)]);
//! freeze(&mut net, &["features.*"]); // no gradient for the features; their batch norm holds still
//! assert_eq!(tree_summary(&net).trainable_params, 10);
//! # Ok::<(), candle_core::Error>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

// `#[derive(ModuleTree)]` names `::ember_layers`; this lets the crate derive for its own layers.
extern crate self as ember_layers;

mod activation;
mod adaptive_avg_pool2d;
mod avg_pool2d;
mod batch_norm;
mod buffer;
mod conv1d;
mod conv2d;
mod conv_config;
mod conv_transpose2d;
mod conv_weights;
mod dropout;
mod embedding;
mod flatten;
mod freeze;
mod group_norm;
mod gru;
mod image_batch;
mod layer_norm;
mod linear;
pub mod loss;
mod lstm;
mod max_pool2d;
mod mode;
mod module_tree;
mod param;
mod param_store;
mod recurrent;
mod rnn;
mod sequential;
mod state_split;
mod tree_summary;
mod weight_init;

pub use activation::Activation;
pub use adaptive_avg_pool2d::{AdaptiveAvgPool2d, GlobalAvgPool2d};
pub use avg_pool2d::AvgPool2d;
pub use batch_norm::{BatchNorm, BatchNorm1d, BatchNorm2d, BatchNormConfig};
pub use buffer::Buffer;
pub use conv1d::{Conv1d, Conv1dConfig};
pub use conv2d::{Conv2d, Conv2dConfig};
pub use conv_config::ConvConfig;
pub use conv_transpose2d::{ConvTranspose2d, ConvTranspose2dConfig};
pub use dropout::{Dropout, Dropout2d, DropoutConfig};
pub use embedding::Embedding;
pub use ember_derive::ModuleTree;
/// Shell-style path patterns (re-exported from ember-kernels, where the one copy lives).
pub use ember_kernels::glob_match;
pub use flatten::Flatten;
pub use freeze::{freeze, unfreeze, FreezeReport};
pub use group_norm::{GroupNorm, GroupNormConfig};
pub use gru::Gru;
pub use layer_norm::{LayerNorm, LayerNormConfig};
pub use linear::Linear;
pub use lstm::Lstm;
pub use max_pool2d::MaxPool2d;
pub use mode::Mode;
pub use module_tree::{Entry, EntryMut, LayerKind, ModulePath, ModuleTree};
pub use param::{LowRank, Param, RankMask};
pub use param_store::{ParamStore, BUFFER_NAMES};
pub use recurrent::{RecurrentConfig, RecurrentOutput};
pub use rnn::{Rnn, RnnNonlinearity};
pub use sequential::{Sequential, SequentialBuilder, SequentialLayer};
pub use state_split::{split_state, trainable_vars, StateSplit};
pub use tree_summary::{tree_summary, with_commas, ChildRow, ModuleRow, TensorRow, TreeSummary};
pub use weight_init::WeightInit;
