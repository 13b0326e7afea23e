//! Training loop, metrics and checkpoints for ember.
//!
//! [`fit`] trains any `candle_nn::ModuleT` classifier with any `ember_optim::Optimizer`,
//! stepping an optional schedule every batch and validating after every epoch;
//! [`evaluate`] fills a [`ConfusionMatrix`] from which accuracy and per-class
//! precision/recall/F1 follow. Checkpoints are safetensors files written atomically (through
//! `ember-io`).
//!
//! Data-parallel training (PyTorch's DDP) runs the same loop on every replica:
//! [`Learner::with_collective`] joins a group through a [`Collective`]: the in-process
//! [`InProcessGroup`] for replicas on threads, driven by [`fit_replicated`]; across processes
//! and machines, a group formed from torchrun's variables ([`RendezvousConfig`], the
//! [`rendezvous`] module) with a [`TcpCollective`] (CPUs) or, with the `nccl` feature, an
//! `NcclCollective` (GPUs), each rank driven by [`fit_replica`].
//!
//! Features: `nccl` (off by default; `NcclCollective`, needs CUDA and NCCL to build) and, both
//! default, `plots` (`PlotLogger` and the `plots` module: PNG learning curves and
//! confusion matrices, drawn with `plotters`) and `tensorboard` (`TensorBoardLogger` and the
//! `tensorboard` module: event files). Without them the crate trains, evaluates and checkpoints as before, with no plotting
//! dependency.
//!
//! ```
//! use std::sync::Arc;
//! use candle_core::{DType, Device};
//! use ember_data::{DataLoader, LabelledImages};
//! use ember_layers::ParamStore;
//! use ember_optim::{Adam, AdamConfig};
//! use ember_train::{evaluate, fit, FitOptions};
//!
//! // Two classes: dark images (label 0) and bright ones (label 1).
//! let pixels: Vec<u8> = (0..64).flat_map(|i| vec![if i % 2 == 0 { 10 } else { 240 }; 28 * 28]).collect();
//! let labels: Vec<u8> = (0..64).map(|i| (i % 2) as u8).collect();
//! let data = Arc::new(LabelledImages::new(pixels, labels, 28, 28, 10)?);
//!
//! let store = ParamStore::new(0, &Device::Cpu);
//! let model = ember_zoo::build("mnist-cnn", store.var_builder(DType::F32))?;
//! let mut adam = Adam::new(store.vars(), AdamConfig { lr: 1e-2, ..AdamConfig::default() })?;
//! let train = DataLoader::new(data.clone(), 16).with_shuffle(0);
//! let history = fit(model.as_ref(), &mut adam, &train, Some(&DataLoader::new(data.clone(), 64)), &FitOptions::new(3), |_| {})?;
//! assert_eq!(history.len(), 3);
//! assert_eq!(evaluate(model.as_ref(), &DataLoader::new(data.clone(), 64), 10)?.confusion.accuracy(), 1.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod callback;
pub mod checkpoint;
pub mod collective;
mod data_parallel;
mod error;
mod learner;
pub mod metrics;
#[cfg(feature = "nccl")]
mod nccl_collective;
#[cfg(feature = "plots")]
pub mod plots;
pub mod rendezvous;
mod report;
mod store;
mod tcp_collective;
#[cfg(feature = "tensorboard")]
pub mod tensorboard;
pub mod throughput;
mod wire;

#[cfg(feature = "plots")]
pub use callback::PlotLogger;
#[cfg(feature = "tensorboard")]
pub use callback::TensorBoardLogger;
pub use callback::{Callback, CallbackContext, Control, CsvLogger, EarlyStopping, Mode, ModelCheckpoint, StepReport};
pub use collective::{Collective, InProcessGroup, InProcessMember};
pub use data_parallel::{fit_replica, fit_replicated, run_replicated, Replica, ReplicaOutcome};
pub use ember_io::IoError;
pub use error::{Error, Result};
pub use learner::{
    evaluate, evaluate_on, evaluate_step, fit, predict, CallbackFailure, Classifier, Evaluation, FitOptions, Learner,
    SchedulePer, StepOutput, TrainStep, RESUME_FILE,
};
pub use metrics::{Average, ConfusionMatrix, RegressionMetrics, TopKAccuracy};
#[cfg(feature = "nccl")]
pub use nccl_collective::NcclCollective;
pub use rendezvous::{RendezvousConfig, RendezvousOptions};
pub use report::EpochReport;
pub use store::Store;
pub use tcp_collective::TcpCollective;
