//! A zoo model with pretrained weights and, when the class count differs, a new classifier head.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::ModuleT;
use ember_layers::{Entry, LayerKind, ModuleTree, ParamStore};
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
    /// Whether the layers were read from a forward pass (every zoo model), so the features
    /// can be tapped there ([`FineTuneModel::features`]); otherwise they come from the model
    /// tree's order, which is the order the layers are declared in.
    pub from_forward: bool,
}

impl HeadInfo {
    /// Runs `network` once (eval mode) on zeros of `input` = `(c, h, w)` and reads the layer
    /// order. A network whose forward pass does not report its layers
    /// ([`Network::from_module`](ember_zoo::Network::from_module)) is read from its model tree
    /// instead: the layers that hold parameters, in declaration order, the head being the last
    /// `Linear` layer.
    pub fn find(network: &Network, input: (usize, usize, usize)) -> Result<Self> {
        if !network.reports_layers() {
            return Self::from_tree(network);
        }
        let (c, h, w) = input;
        let (device, dtype) = network_placement(network);
        let xs = Tensor::zeros((1, c, h, w), dtype, &device)?;
        let mut layers = Vec::new();
        network.forward_tapped(&xs, false, &mut |name, _| layers.push(name.to_string()))?;
        let n = layers.len();
        if n < 2 {
            return Err(Error::invalid(network.name(), "a classifier needs at least two layers to have a head"));
        }
        Ok(Self { head: layers[n - 1].clone(), features: layers[n - 2].clone(), layers, from_forward: true })
    }

    fn from_tree(network: &Network) -> Result<Self> {
        let mut layers: Vec<String> = Vec::new();
        let mut linear: Vec<String> = Vec::new();
        let mut current: Option<(String, LayerKind)> = None;
        network.visit(&mut |path, entry| match entry {
            Entry::Layer(kind) => current = Some((path.to_string(), kind)),
            Entry::Param(_) | Entry::Buffer(_) => {
                let Some((layer, kind)) = &current else { return };
                if path.rsplit_once('.').map(|(parent, _)| parent) == Some(layer.as_str())
                    && layers.last() != Some(layer)
                {
                    layers.push(layer.clone());
                    if *kind == LayerKind::Linear {
                        linear.push(layer.clone());
                    }
                }
            }
        });
        let Some(head) = linear.last().cloned() else {
            return Err(Error::invalid(network.name(), "a classifier needs a Linear layer as its head"));
        };
        let at = layers.iter().position(|l| *l == head).unwrap_or(0);
        let Some(features) = at.checked_sub(1).map(|i| layers[i].clone()) else {
            return Err(Error::invalid(network.name(), "a classifier needs at least two layers to have a head"));
        };
        Ok(Self { head, features, layers, from_forward: false })
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

/// The device and dtype of a network's first parameter (CPU and f32 for one without
/// parameters): where a probe input for it must live.
fn network_placement(network: &Network) -> (Device, DType) {
    let mut found = None;
    network.visit(&mut |_, entry| {
        if let (None, Entry::Param(p)) = (&found, entry) {
            found = Some((p.tensor().device().clone(), p.tensor().dtype()));
        }
    });
    found.unwrap_or((Device::Cpu, DType::F32))
}

impl FineTuneModel {
    /// Any classifier ready to fine-tune: `network` (a zoo model, or a model of your own through
    /// [`Network::from_module`](ember_zoo::Network::from_module)) whose parameters live in
    /// `store`, taking `options.input` images normalised as `preprocessing` says. Its head is
    /// found as [`HeadInfo::find`] says; no registration is needed.
    pub fn from_network(
        network: Network,
        store: ParamStore,
        options: &ModelOptions,
        preprocessing: Preprocessing,
    ) -> Result<Self> {
        let head = HeadInfo::find(&network, options.input)?;
        Ok(Self { network, store, head, options: *options, preprocessing, report: LoadReport::default() })
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        self.store.device()
    }

    /// `name` built for `options` with fresh parameters drawn from `seed` (the from-scratch
    /// baseline).
    pub fn scratch(name: &str, options: &ModelOptions, seed: u64) -> Result<Self> {
        Self::scratch_on(name, options, seed, &Device::Cpu, DType::F32)
    }

    /// [`FineTuneModel::scratch`] with parameters of `dtype` on `device`.
    pub fn scratch_on(name: &str, options: &ModelOptions, seed: u64, device: &Device, dtype: DType) -> Result<Self> {
        let store = ParamStore::new(seed, device);
        let network = ember_zoo::build_with(name, options, store.var_builder(dtype))?;
        Self::from_network(network, store, options, ember_zoo::info(name)?.preprocessing)
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
        Self::scratch(name, options, seed)?.with_weights(weights, rules)
    }

    /// This model with the weights at `weights` (renamed by `rules`), as
    /// [`FineTuneModel::pretrained`] loads them: for any model, on any device (build it with
    /// [`FineTuneModel::scratch_on`] or [`FineTuneModel::from_network`] first).
    pub fn with_weights(self, weights: &Path, rules: &[RenameRule]) -> Result<Self> {
        let mut model = self;
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

    /// The features the head reads, for normalised images (eval mode, detached). Needs a
    /// network that reports its layers ([`HeadInfo::from_forward`]).
    pub fn features(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        if !self.head.from_forward {
            candle_core::bail!(
                "`{}` does not report its layers' outputs, so its features cannot be tapped",
                self.network.name()
            )
        }
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
