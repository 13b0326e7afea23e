//! LoRA (Hu et al., "LoRA: Low-rank adaptation of large language models", ICLR 2022) for the
//! `Linear` and `Conv2d` layers of any zoo model.
//!
//! A target layer's weight `W` (`(out, in)` or `(out, in / groups, kh, kw)`) is used as
//! `W + (alpha / rank) · B A`, with `A` `(rank, in·kh·kw)` (Kaiming-uniform) and `B` `(out,
//! rank)` (zeros, so training starts from the pretrained model), the product reshaped to `W`'s
//! shape. Only `A` and `B` (and parameters named in [`LoraConfig::train_also`], such as a new
//! head) train; the base weights are read detached, so they get no gradient and stay
//! bit-identical.
//!
//! How it works without touching the layers: zoo models read their weights from a
//! `VarBuilder`; [`LoraModel`] rebuilds the network for every forward pass from a backend that
//! hands out `W + ΔW` for target weights (a graph over the adapter `Var`s). Dropout is applied
//! to the rank components (`B · diag(m) · A`, `m` Bernoulli, scaled by `1 / (1 - p)`; LyCORIS'
//! "rank dropout") rather than to the layer input, because the adapter acts through the
//! weight.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{ModuleT, VarBuilder};
use ember_layers::{ParamStore, BUFFER_NAMES};
use ember_zoo::Network;
use rand::{Rng, SeedableRng};

use crate::freeze::matches_any;
use crate::pretrained::FineTuneModel;
use crate::{read_checkpoint, Error, Result};

/// Settings of [`LoraModel`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// Rank `r` of the update.
    pub rank: usize,
    /// The update is scaled by `alpha / rank`.
    pub alpha: f64,
    /// Probability of dropping a rank component in train mode.
    pub dropout: f64,
    /// Glob patterns of target layers (parameter prefixes: `*._project_conv`, `fc*`); a layer
    /// is a target when it has a 2-D or 4-D `weight`.
    pub targets: Vec<String>,
    /// Glob patterns of base parameters that train in full beside the adapters (a new head:
    /// `_fc.*`; PEFT's `modules_to_save`).
    pub train_also: Vec<String>,
    /// Hold every batch norm on its running statistics (the base is frozen, so by default its
    /// statistics are too); `false` lets them follow the new data in train mode (they are
    /// buffers, not trained parameters).
    pub frozen_batch_norms: bool,
    /// Seed of `A`'s initial values and of the dropout masks.
    pub seed: u64,
}

impl LoraConfig {
    /// Rank `rank`, alpha `2 * rank`, no dropout, the given targets, nothing else trained.
    pub fn new(rank: usize, targets: &[&str]) -> Self {
        Self {
            rank,
            alpha: 2.0 * rank as f64,
            dropout: 0.0,
            targets: targets.iter().map(|s| s.to_string()).collect(),
            train_also: Vec::new(),
            frozen_batch_norms: true,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone)]
struct Target {
    module: String,
    shape: Vec<usize>,
}

/// A zoo model with LoRA adapters on its targeted layers. See the module docs.
pub struct LoraModel {
    model: FineTuneModel,
    adapters: ParamStore,
    targets: Vec<Target>,
    cfg: LoraConfig,
    rng: Mutex<rand::rngs::StdRng>,
}

impl std::fmt::Debug for LoraModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoraModel").field("targets", &self.targets.len()).field("cfg", &self.cfg).finish()
    }
}

fn is_buffer(name: &str) -> bool {
    BUFFER_NAMES.contains(&name.rsplit('.').next().unwrap_or(name))
}

impl LoraModel {
    /// Adapters on every layer of `model` matching `cfg.targets`; fails when none matches.
    pub fn new(model: FineTuneModel, cfg: LoraConfig) -> Result<Self> {
        if cfg.rank == 0 || !(0.0..1.0).contains(&cfg.dropout) {
            return Err(Error::invalid(
                "lora",
                format!("rank {} and dropout {} (need rank >= 1, 0 <= p < 1)", cfg.rank, cfg.dropout),
            ));
        }
        let adapters = ParamStore::new(cfg.seed, &Device::Cpu);
        let vb = adapters.var_builder(DType::F32);
        let mut targets = Vec::new();
        for (name, var) in model.store.vars() {
            let Some(module) = name.strip_suffix(".weight") else { continue };
            if !matches_any(&cfg.targets, module) || !matches!(var.dims().len(), 2 | 4) {
                continue;
            }
            let shape = var.dims().to_vec();
            let fan_in: usize = shape[1..].iter().product();
            // PyTorch's kaiming_uniform_(a = sqrt(5)), as PEFT initialises A.
            let bound = 1.0 / (fan_in as f64).sqrt();
            vb.get_with_hints(
                (cfg.rank, fan_in),
                &format!("{module}.lora_A"),
                candle_nn::Init::Uniform { lo: -bound, up: bound },
            )?;
            vb.get_with_hints((shape[0], cfg.rank), &format!("{module}.lora_B"), candle_nn::Init::Const(0.0))?;
            targets.push(Target { module: module.to_string(), shape });
        }
        if targets.is_empty() {
            return Err(Error::invalid("lora", format!("no layer with a 2-D or 4-D weight matches {:?}", cfg.targets)));
        }
        let rng = Mutex::new(rand::rngs::StdRng::seed_from_u64(cfg.seed ^ 0x10ba));
        Ok(Self { model, adapters, targets, cfg, rng })
    }

    /// The adapters (`{layer}.lora_A`, `{layer}.lora_B`).
    pub fn adapters(&self) -> &ParamStore {
        &self.adapters
    }

    /// The wrapped model (its store holds the base weights).
    pub fn base(&self) -> &FineTuneModel {
        &self.model
    }

    /// Number of adapted layers.
    pub fn num_targets(&self) -> usize {
        self.targets.len()
    }

    /// What an optimizer should get: the adapters and the base parameters matching
    /// [`LoraConfig::train_also`].
    pub fn trainable(&self) -> Vec<(String, Var)> {
        let mut all = self.adapters.vars();
        all.extend(self.model.store.vars().into_iter().filter(|(n, _)| matches_any(&self.cfg.train_also, n)));
        all
    }

    /// Number of trainable scalars ([`LoraModel::trainable`]).
    pub fn num_trainable(&self) -> usize {
        self.trainable().iter().map(|(_, v)| v.elem_count()).sum()
    }

    fn scale(&self) -> f64 {
        self.cfg.alpha / self.cfg.rank as f64
    }

    /// `ΔW` of every target, reshaped to its weight, with rank dropout when `train`.
    fn deltas(&self, train: bool) -> candle_core::Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for t in &self.targets {
            let get = |suffix: &str| {
                self.adapters
                    .get(&format!("{}.{suffix}", t.module))
                    .ok_or_else(|| candle_core::Error::Msg(format!("lora: adapter `{}.{suffix}` is missing", t.module)))
            };
            let (a, b) = (get("lora_A")?, get("lora_B")?);
            let mut b = b.as_tensor().clone();
            if train && self.cfg.dropout > 0.0 {
                let p = self.cfg.dropout;
                let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
                let mask: Vec<f32> = (0..self.cfg.rank)
                    .map(|_| if rng.random::<f64>() < p { 0.0 } else { (1.0 / (1.0 - p)) as f32 })
                    .collect();
                b = b.broadcast_mul(&Tensor::from_vec(mask, (1, self.cfg.rank), b.device())?)?;
            }
            let delta = (b.matmul(a.as_tensor())? * self.scale())?.reshape(t.shape.as_slice())?;
            out.insert(format!("{}.weight", t.module), delta);
        }
        Ok(out)
    }

    /// The network with the current adapters (rebuilt; batch norms frozen when
    /// [`LoraConfig::frozen_batch_norms`]).
    pub fn network(&self, train: bool) -> candle_core::Result<Network> {
        let backend = LoraBackend {
            base: self.model.store.clone(),
            deltas: self.deltas(train)?,
            trainable: self.model.store.names().into_iter().filter(|n| matches_any(&self.cfg.train_also, n)).collect(),
        };
        let vb = VarBuilder::from_backend(Box::new(backend), DType::F32, Device::Cpu);
        let mut network = ember_zoo::build_with(self.model.network.name(), &self.model.options, vb)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let frozen = self.cfg.frozen_batch_norms;
        network.set_batch_norms_frozen(&|_| frozen);
        Ok(network)
    }

    /// Adds `(alpha / rank) · B A` into every target's base weight and resets `B` to zero, so
    /// the base model alone now computes what the adapted model computed (and this model still
    /// does). Returns the number of merged layers.
    pub fn merge(&self) -> Result<usize> {
        let deltas = self.deltas(false)?;
        for t in &self.targets {
            let name = format!("{}.weight", t.module);
            let w = self.model.store.get(&name).ok_or_else(|| Error::invalid(&name, "base weight is missing"))?;
            let merged = (w.as_tensor().detach() + deltas[&name].detach())?;
            w.set(&merged)?;
            let b = format!("{}.lora_B", t.module);
            self.adapters.assign(&b, &Tensor::zeros((t.shape[0], self.cfg.rank), DType::F32, &Device::Cpu)?)?;
        }
        Ok(self.targets.len())
    }

    /// Unwraps the base model (after [`LoraModel::merge`], the fine-tuned model).
    pub fn into_base(self) -> FineTuneModel {
        self.model
    }

    /// Saves the adapters and the `train_also` parameters (not the frozen base) to a
    /// safetensors file, atomically, with rank, alpha and targets in its metadata.
    pub fn save_adapters(&self, path: &Path) -> Result<()> {
        let mut tensors = self.adapters.state();
        tensors.extend(self.model.store.state().into_iter().filter(|(n, _)| matches_any(&self.cfg.train_also, n)));
        let meta = serde_json::json!({
            "rank": self.cfg.rank, "alpha": self.cfg.alpha, "targets": self.cfg.targets, "train_also": self.cfg.train_also,
        });
        ember_train::checkpoint::save_tensors_with_metadata(
            &tensors,
            [("lora".to_string(), meta.to_string())].into(),
            path,
        )?;
        Ok(())
    }

    /// Loads a file written by [`LoraModel::save_adapters`] for the same targets, strictly:
    /// every adapter (and `train_also` parameter) must be present with its shape, and nothing
    /// else, else nothing is loaded.
    pub fn load_adapters(&self, path: &Path) -> Result<()> {
        let (_, tensors) = read_checkpoint(path)?;
        let source = path.display().to_string();
        let mut expected: HashMap<String, Vec<usize>> =
            self.adapters.state().into_iter().map(|(n, t)| (n, t.dims().to_vec())).collect();
        expected.extend(
            self.model
                .store
                .state()
                .into_iter()
                .filter(|(n, _)| matches_any(&self.cfg.train_also, n))
                .map(|(n, t)| (n, t.dims().to_vec())),
        );
        let mut problems = Vec::new();
        let names: HashSet<&String> = tensors.iter().map(|(n, _)| n).collect();
        for (n, shape) in &expected {
            if !names.contains(n) {
                problems.push(format!("missing {n}"));
            } else if let Some((_, t)) = tensors.iter().find(|(k, _)| k == n) {
                if t.dims() != shape.as_slice() {
                    problems.push(format!("{n} has shape {:?}, expected {shape:?}", t.dims()));
                }
            }
        }
        problems
            .extend(tensors.iter().filter(|(n, _)| !expected.contains_key(n)).map(|(n, _)| format!("unexpected {n}")));
        if !problems.is_empty() {
            return Err(Error::StateMismatch { source_name: source, summary: problems.join(", ") });
        }
        for (n, t) in tensors {
            if n.ends_with(".lora_A") || n.ends_with(".lora_B") {
                self.adapters.assign(&n, &t)?;
            } else {
                self.model.store.assign(&n, &t)?;
            }
        }
        Ok(())
    }
}

impl ModuleT for LoraModel {
    fn forward_t(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.network(train)?.forward_t(xs, train)
    }
}

/// Hands out the base weights detached (frozen), buffers as they are (batch norm updates them
/// in place), `train_also` parameters as they are, and `W + ΔW` for targets.
struct LoraBackend {
    base: ParamStore,
    deltas: HashMap<String, Tensor>,
    trainable: HashSet<String>,
}

impl SimpleBackend for LoraBackend {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if !self.base.contains_tensor(name) {
            candle_core::bail!("lora: the base model has no tensor `{name}`")
        }
        let t = SimpleBackend::get(&self.base, shape, name, init, dtype, dev)?;
        if is_buffer(name) || self.trainable.contains(name) {
            return Ok(t);
        }
        match self.deltas.get(name) {
            Some(d) => t.detach() + d,
            None => Ok(t.detach()),
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.base.get_unchecked(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.base.contains_tensor(name)
    }
}
