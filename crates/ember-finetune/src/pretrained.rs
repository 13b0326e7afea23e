//! A zoo model with pretrained weights and, when the class count differs, a new classifier head.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::ModuleT;
use ember_layers::ParamStore;
use ember_zoo::{ModelOptions, Network, Preprocessing};

use crate::load::{load_state, LoadOptions, LoadReport};
use crate::{read_checkpoint, Error, Result};
use ember_io::{rename_all, RenameRule};

/// Where a classifier's head sits, found from the order of its forward pass: the last layer
/// (`_fc`, `fc`, `fc2`), whose parameters are `{head}.weight` and `{head}.bias`, and the layer
/// whose output it reads (`_dropout`, `flatten`, `relu3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadInfo {
    /// The head layer's name (its parameter prefix).
    pub head: String,
    /// The layer whose output feeds the head (the features of a linear probe).
    pub features: String,
    /// Every layer name in forward order.
    pub layers: Vec<String>,
}

impl HeadInfo {
    /// Runs `network` once (eval mode) on zeros of `input` = `(c, h, w)` and reads the layer
    /// order.
    pub fn find(network: &Network, input: (usize, usize, usize)) -> Result<Self> {
        let (c, h, w) = input;
        let xs = Tensor::zeros((1, c, h, w), DType::F32, &Device::Cpu)?;
        let mut layers = Vec::new();
        network.forward_tapped(&xs, false, &mut |name, _| layers.push(name.to_string()))?;
        let n = layers.len();
        if n < 2 {
            return Err(Error::invalid(network.name(), "a classifier needs at least two layers to have a head"));
        }
        Ok(Self { head: layers[n - 1].clone(), features: layers[n - 2].clone(), layers })
    }

    /// Glob pattern of the head's parameters.
    pub fn pattern(&self) -> String {
        format!("{}.*", self.head)
    }
}

/// A classifier ready to fine-tune: the network, its parameters, where its head is, and the
/// preprocessing its weights expect (the data loader normalises with it: batches reach the
/// network already normalised).
pub struct FineTuneModel {
    /// The network.
    pub network: Network,
    /// Its parameters and buffers.
    pub store: ParamStore,
    /// Its head.
    pub head: HeadInfo,
    /// Build options (input shape, classes, seed).
    pub options: ModelOptions,
    /// The preprocessing the weights expect (the zoo entry's, e.g. ImageNet mean/std for
    /// ResNets, `(x - 0.5) / 0.5` for EfficientNet-Lite).
    pub preprocessing: Preprocessing,
    /// What loading the pretrained weights did (empty for a model trained from scratch).
    pub report: LoadReport,
}

impl std::fmt::Debug for FineTuneModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FineTuneModel").field("network", &self.network.name()).field("head", &self.head.head).finish()
    }
}

impl FineTuneModel {
    /// `name` built for `options` with fresh parameters drawn from `seed` (the from-scratch
    /// baseline).
    pub fn scratch(name: &str, options: &ModelOptions, seed: u64) -> Result<Self> {
        let store = ParamStore::new(seed, &Device::Cpu);
        let network = ember_zoo::build_with(name, options, store.var_builder(DType::F32))?;
        let head = HeadInfo::find(&network, options.input)?;
        Ok(Self {
            network,
            store,
            head,
            options: *options,
            preprocessing: ember_zoo::info(name)?.preprocessing,
            report: LoadReport::default(),
        })
    }

    /// `name` built for `options` with the weights at `weights` (renamed by `rules`). Every
    /// tensor but the head must match (else [`Error::StateMismatch`]); the head is loaded too
    /// when its shape matches `options.classes`, else it keeps its fresh initialisation (a new
    /// head for `options.classes` classes). A first convolution trained on other input channels
    /// than `options.input.0` is adapted ([`adapt_input_conv`](crate::adapt_input_conv)).
    pub fn pretrained(
        name: &str,
        options: &ModelOptions,
        weights: &Path,
        rules: &[RenameRule],
        seed: u64,
    ) -> Result<Self> {
        let mut model = Self::scratch(name, options, seed)?;
        let (_, mut tensors) = read_checkpoint(weights)?;
        let renamed = rename_all(rules, &tensors.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
        // Pretrained RGB weights for a model of other input channels: timm's rule.
        crate::in_chans::adapt_stem(&model.head.layers, &model.store, &mut tensors, &renamed)?;
        let head_weight = format!("{}.weight", model.head.head);
        let model_head = model.store.get(&head_weight).map(|v| v.dims().to_vec());
        let ckpt_head =
            renamed.iter().zip(&tensors).find(|(n, _)| **n == head_weight).map(|(_, (_, t))| t.dims().to_vec());
        let mut load = LoadOptions { strict: true, rename: rules.to_vec(), skip: Vec::new() };
        if model_head != ckpt_head {
            load.skip.push(model.head.pattern());
        }
        model.report = load_state(&model.store, tensors, &load, &weights.display().to_string())?;
        Ok(model)
    }

    /// The model's output for normalised images.
    pub fn logits(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.network.forward_t(xs, train)
    }

    /// The features the head reads, for normalised images (eval mode, detached).
    pub fn features(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let mut found = None;
        let wanted = self.head.features.as_str();
        self.network.forward_tapped(xs, false, &mut |name, t| {
            if name == wanted {
                found = Some(t.detach());
            }
        })?;
        let f = found.ok_or_else(|| candle_core::Error::Msg(format!("layer `{wanted}` produced no output")))?;
        f.flatten_from(1)
    }
}

impl ModuleT for FineTuneModel {
    fn forward_t(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.logits(xs, train)
    }
}
