//! The ember model zoo: the tutorial's model families, trainable, with PyTorch-compatible
//! parameter names.
//!
//! Models are built by name from a [`candle_nn::VarBuilder`] (usually an
//! `ember_layers::ParamStore`'s), with parameter names equal to the keys of the matching
//! PyTorch model's `state_dict` (torchvision's for ResNets, the EfficientNet-Lite PyTorch
//! checkpoints' for EfficientNet-Lite). [`MODELS`] lists them; [`build_with`] builds one for an
//! input shape and class count; [`summarize`] gives its layer table.
//!
//! | family | names | paper |
//! |---|---|---|
//! | [`Mlp`] | `mlp` | Rumelhart et al. 1986 |
//! | [`MnistCnn`] | `mnist-cnn` | the Keras/PyTorch MNIST example |
//! | [`LeNet5`] | `lenet5` | LeCun et al. 1998 |
//! | [`VggSmall`] | `vgg-small` | Simonyan and Zisserman 2015 |
//! | [`ResNet`] | `resnet18`, `resnet34`, `resnet50` | He et al. 2016 |
//! | [`EfficientNetLite`] | `efficientnet-lite0` .. `efficientnet-lite4` | Tan and Le 2019 |
//! | [`RecurrentClassifier`] | `lstm`, `bilstm`, `gru`, `bigru` | Hochreiter and Schmidhuber 1997; Cho et al. 2014 |
//! | [`Vae`] | `vae-mlp`, `vae-conv` | Kingma and Welling 2014 |
//!
//! Models whose train and eval behaviour differ (batch norm, dropout, VAE noise) implement
//! candle's `ModuleT`; `forward_t(x, true)` runs batch norm on batch statistics and updates its
//! running statistics.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::ModuleT;
//! use ember_layers::ParamStore;
//! use ember_zoo::ModelOptions;
//!
//! let store = ParamStore::new(0, &Device::Cpu);
//! let model = ember_zoo::build("mnist-cnn", store.var_builder(DType::F32))?;
//! let logits = model.forward_t(&Tensor::zeros((4, 1, 28, 28), DType::F32, &Device::Cpu)?, false)?;
//! assert_eq!(logits.dims(), &[4, 10]);
//! assert_eq!(store.num_parameters(), 225_034);
//!
//! // ResNet-18 on 1x28x28 digits (CIFAR stem), with torchvision's names.
//! let store = ParamStore::new(0, &Device::Cpu);
//! let resnet = ember_zoo::build_with("resnet18", &ModelOptions::mnist(), store.var_builder(DType::F32))?;
//! assert_eq!(resnet.forward_t(&Tensor::zeros((2, 1, 28, 28), DType::F32, &Device::Cpu)?, true)?.dims(), &[2, 10]);
//! assert!(store.buffer_names().contains(&"layer2.0.downsample.1.running_mean".to_string()));
//!
//! // Parameter counts and layer tables without initialising anything.
//! let imagenet = ModelOptions::new((3, 224, 224), 1000);
//! assert_eq!(ember_zoo::count_parameters("resnet18", &imagenet)?, 11_689_512);
//! let table = ember_zoo::summarize("lenet5", &ModelOptions::mnist())?;
//! assert_eq!(table.layers.last().map(|l| l.output.clone()), Some(vec![1, 10]));
//! # Ok::<(), ember_zoo::Error>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod efficientnet_lite;
mod error;
mod lenet;
mod mlp;
mod mnist_cnn;
mod model_card;
mod network;
mod preprocessing;
mod recurrent_classifier;
mod registry;
mod resnet;
mod summary;
mod task;
mod vae;
mod vgg;

pub use efficientnet_lite::{EfficientNetLite, EfficientNetLiteConfig};
pub use error::{Error, Result};
pub use lenet::LeNet5;
pub use mlp::{Mlp, MlpConfig};
pub use mnist_cnn::MnistCnn;
pub use model_card::{ModelCard, MODEL_CARD_KEY};
pub use network::{Layered, Network, Tap};
pub use preprocessing::{Preprocessing, Resampling, IMAGENET_MEAN, IMAGENET_STD};
pub use recurrent_classifier::{CellKind, RecurrentClassifier, RecurrentClassifierConfig};
pub use registry::{
    build, build_vae, build_with, info, Architecture, ModelInfo, ModelOptions, DEFAULT_CLASSIFIER, DEFAULT_PRETRAINED,
    DEFAULT_STUDENT, MAX_CLASSES, MAX_INPUT_CHANNELS, MAX_INPUT_SIDE, MODELS,
};
pub use resnet::{BlockKind, ResNet, ResNetConfig, Stem};
pub use summary::{count_parameters, state_shapes, summarize, LayerRow, Summary, MAX_SUMMARY_INPUT};
pub use task::Task;
pub use vae::{elbo_loss, reparameterize, ElboTerms, Vae, VaeConfig, VaeKind, VaeOutput, MAX_SAMPLES};
pub use vgg::{VggSmall, VggSmallConfig};
