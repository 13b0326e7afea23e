//! ember, a deep-learning toolkit on [candle](https://github.com/huggingface/candle): every ember
//! crate behind one dependency, and a prelude with what most programs start from.
//!
//! ```
//! use ember::prelude::*;
//!
//! // The classic MNIST CNN from the zoo, with seeded parameters in a ParamStore.
//! let device = Device::Cpu;
//! let store = ParamStore::new(42, &device);
//! let model = ember::zoo::build("mnist-cnn", store.var_builder(DType::F32))?;
//! let images = Tensor::zeros((2, 1, 28, 28), DType::F32, &device)?;
//! let logits = model.forward_t(&images, false)?;
//! assert_eq!(logits.dims(), &[2, 10]);
//!
//! // One Adam step on a cross-entropy loss.
//! let labels = Tensor::new(&[3u32, 7], &device)?;
//! let loss = ember::layers::loss::cross_entropy(&model.forward_t(&images, true)?, &labels)?;
//! let mut adam = Adam::new(store.vars(), AdamConfig::default())?;
//! adam.step(&loss.backward()?)?;
//! assert!(loss.to_scalar::<f32>()?.is_finite());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Each crate is a module here (`ember::layers` is `ember-layers`, `ember::io` is the
//! checkpoint I/O of `ember-io`, ...); the features `data`, `augment`, `zoo`, `train`, `plots`,
//! `tensorboard` and `finetune` (all on by default) leave out what a program does not need, and
//! `download` adds fetching known datasets over HTTPS. candle's crates are re-exported
//! as [`candle`] and [`candle_nn`], so a program need not pin candle's version by hand.

pub use candle_core as candle;
pub use candle_nn;
#[cfg(feature = "augment")]
pub use ember_augment as augment;
#[cfg(feature = "data")]
pub use ember_data as data;
#[cfg(feature = "finetune")]
pub use ember_finetune as finetune;
pub use ember_io as io;
pub use ember_kernels as kernels;
pub use ember_layers as layers;
pub use ember_optim as optim;
#[cfg(feature = "train")]
pub use ember_train as train;
#[cfg(feature = "zoo")]
pub use ember_zoo as zoo;

/// What most programs use: candle's tensor types and module traits, ember's parameter store,
/// layers, model tree and optimizers, and (with their features) the Learner, the zoo and the
/// data loader.
pub mod prelude {
    pub use candle_core::{DType, Device, Module, Tensor, D};
    pub use candle_nn::{ModuleT, VarBuilder};
    #[cfg(feature = "augment")]
    pub use ember_augment::Pipeline;
    #[cfg(feature = "data")]
    pub use ember_data::{DataLoader, Dataset, ImageFolder};
    #[cfg(feature = "finetune")]
    pub use ember_finetune::{FineTuneModel, LoraConfig, LoraModel};
    pub use ember_layers::{
        Activation, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Dropout, DropoutConfig, Linear, MaxPool2d,
        ModuleTree, ParamStore,
    };
    pub use ember_optim::{Adam, AdamConfig, Optimizer, Schedule, Sgd, SgdConfig};
    #[cfg(feature = "train")]
    pub use ember_train::{EarlyStopping, FitOptions, Learner, Mode, ModelCheckpoint};
    #[cfg(feature = "zoo")]
    pub use ember_zoo::{ModelOptions, Network};
}
