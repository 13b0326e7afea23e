//! Tensors and CPU kernels for ember.
//!
//! This crate is the one place where ember decides *how* an operation is computed. Layers in
//! `ember-layers` call the functions here ([`conv2d`], [`max_pool2d`], [`linear`],
//! [`cross_entropy`], ...) and never candle's ops directly. For f32/f64 CPU tensors they run on
//! ember's own kernels — candle `CustomOp`s whose backward computes every gradient in one pass:
//! a direct AVX-512 convolution (stride 1, or 2 to 4 under a wider kernel; chosen at run time)
//! and im2col + GEMM for the rest, a direct depthwise kernel, convolution fused with its
//! activation and max pool, fused linear, batch norm and cross-entropy — and on candle's ops
//! elsewhere.
//! [`process::tune_for_training`] is the one call an application makes to get the measured
//! speed (`docs/performance.md`).
//!
//! It also holds parameter initialisers ([`init`]) that draw from a caller-supplied seeded RNG,
//! and a finite-difference gradient checker ([`gradcheck`]).
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use ember_kernels::{max_pool2d, Pool2dParams};
//!
//! let x = Tensor::new(&[[[[1f32, 2.], [3., 4.]]]], &Device::Cpu)?;
//! let y = max_pool2d(&x, Pool2dParams::square(2))?;
//! assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, vec![4.]);
//! # Ok::<(), candle_core::Error>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod activation;
mod avg_pool;
mod batch_norm;
mod conv;
mod conv2d_batched;
mod conv2d_direct;
mod conv2d_gemm;
mod conv_geometry;
mod conv_spec;
mod cross_entropy;
mod depthwise;
mod element;
mod finite;
mod glob;
pub mod gradcheck;
mod im2col;
pub mod init;
mod linear;
mod matmul;
mod max_pool;
mod no_grad;
mod phase_split;
mod pool_geometry;
mod portable;
pub mod process;
mod residual;
mod row_copy;
mod unpool;
mod weighted_op;
mod window_pool;
mod winograd;

pub use activation::{activate, relu, FusedActivation};
pub use avg_pool::{adaptive_avg_pool2d, avg_pool2d, global_avg_pool2d};
pub use batch_norm::{
    batch_norm_eval, batch_norm_train, batch_norm_train_add, batch_norm_train_max_pool, candle_batch_norm_eval,
    candle_batch_norm_train, BatchStats,
};
pub use conv::{
    candle_conv2d, conv1d, conv2d, conv2d_activation_max_pool, conv2d_activation_max_pool_t, conv2d_padded_t,
    conv2d_with_activation, conv_transpose2d, ConvTranspose2dParams,
};
pub use conv_geometry::{Conv2dParams, Padding2d};
pub use cross_entropy::cross_entropy;
pub use finite::all_finite;
pub use glob::glob_match;
pub use linear::linear;
pub use max_pool::{max_pool2d, Pool2dParams};
pub use no_grad::{grad_enabled, no_grad, NoGradGuard};
pub use portable::{portable_ops_forced, with_portable_ops};
pub use residual::add_activate;
