//! LoRA (Hu et al., "LoRA: Low-rank adaptation of large language models", ICLR 2022) for the
//! `Linear` and `Conv2d` layers of any model with a [`ModuleTree`].
//!
//! A target layer's weight `W` (`(out, in)` or `(out, in / groups, kh, kw)`) is used as
//! `W + (alpha / rank) · B A`, with `A` `(rank, in·kh·kw)` (Kaiming-uniform) and `B` `(out,
//! rank)` (zeros, so training starts from the pretrained model), the product reshaped to `W`'s
//! shape. Only `A` and `B` (and parameters named in [`LoraConfig::train_also`], such as a new
//! head) train; the base parameters are frozen, so they get no gradient and stay bit-identical.
//!
//! How: [`attach_lora`] walks the model tree once and attaches a
//! [`LowRank`](ember_layers::LowRank) update to each target weight; the layers keep their own
//! forward pass and read the adapted weight, so nothing is rebuilt per step and any model, a
//! zoo model or one written with `#[derive(ModuleTree)]`, can be adapted. Dropout is applied to
//! the rank components (`B · diag(m) · A`, `m` Bernoulli, scaled by `1 / (1 - p)`; LyCORIS'
//! "rank dropout") rather than to the layer input, because the adapter acts through the weight.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use candle_core::{Tensor, Var};
use candle_nn::ModuleT;
use ember_layers::{trainable_vars, EntryMut, LayerKind, LowRank, ModuleTree, ParamStore, RankMask};
use rand::{Rng, SeedableRng};

use crate::freeze::matches_any;
use crate::pretrained::FineTuneModel;
use crate::{read_checkpoint, Error, Result};

/// Settings of [`attach_lora`] and [`LoraModel`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// Rank `r` of the update.
    pub rank: usize,
    /// The update is scaled by `alpha / rank`.
    pub alpha: f64,
    /// Probability of dropping a rank component in train mode.
    pub dropout: f64,
    /// Glob patterns of target layers' paths (`*._project_conv`, `fc*`); only `Linear` and
    /// `Conv2d` layers are adapted.
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

    fn validate(&self) -> Result<()> {
        if self.rank == 0 || !(0.0..1.0).contains(&self.dropout) || !self.alpha.is_finite() {
            return Err(Error::invalid(
                "lora",
                format!(
                    "rank {}, alpha {} and dropout {} (need rank >= 1, a finite alpha, 0 <= p < 1)",
                    self.rank, self.alpha, self.dropout
                ),
            ));
        }
        Ok(())
    }
}

/// The adapters [`attach_lora`] put on a model: their variables (`{layer}.lora_A`,
/// `{layer}.lora_B`, in a store of their own), and the rank-dropout masks.
pub struct LoraAdapters {
    store: ParamStore,
    /// The rank-dropout mask of each adapted layer.
    masks: Vec<RankMask>,
    train_also: Vec<String>,
    rank: usize,
    alpha: f64,
    dropout: f64,
    /// The adapted weights' dtype, which the dropout masks take.
    dtype: candle_core::DType,
    target_patterns: Vec<String>,
    rng: Mutex<rand::rngs::StdRng>,
}

impl std::fmt::Debug for LoraAdapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoraAdapters").field("targets", &self.masks.len()).field("rank", &self.rank).finish()
    }
}

/// Adapts `model` once, in place: freezes every parameter but those matching
/// `cfg.train_also`, then attaches a rank-`cfg.rank` update to the weight of every `Linear` and
/// `Conv2d` layer whose path matches `cfg.targets`. The adapters are created on the weights'
/// device in their dtype. Fails, changing nothing, when the settings are invalid or no layer
/// matches. Batch norms are left as they are ([`LoraModel`] applies
/// [`LoraConfig::frozen_batch_norms`]).
pub fn attach_lora(model: &mut (impl ModuleTree + ?Sized), cfg: &LoraConfig) -> Result<LoraAdapters> {
    cfg.validate()?;
    // Find the targets first, so a failure leaves the model untouched.
    let mut found: Vec<(String, Vec<usize>, candle_core::DType, candle_core::Device)> = Vec::new();
    let mut layer: Option<(String, LayerKind)> = None;
    model.visit(&mut |path, entry| match entry {
        ember_layers::Entry::Layer(kind) => layer = Some((path.to_string(), kind)),
        ember_layers::Entry::Param(p) => {
            if let Some((module, kind)) = &layer {
                let adaptable = matches!(kind, LayerKind::Linear | LayerKind::Conv2d);
                if adaptable
                    && p.low_rank().is_none()
                    && path.strip_prefix(module.as_str()) == Some(".weight")
                    && matches_any(&cfg.targets, module)
                {
                    let t = p.tensor();
                    found.push((module.clone(), t.dims().to_vec(), t.dtype(), t.device().clone()));
                }
            }
        }
        ember_layers::Entry::Buffer(_) => {}
    });
    let Some((_, _, dtype, device)) = found.first().cloned() else {
        return Err(Error::invalid(
            "lora",
            format!("no Linear or Conv2d layer matches {:?} (or all of them are adapted already)", cfg.targets),
        ));
    };
    let store = ParamStore::new(cfg.seed, &device);
    let vb = store.var_builder(dtype);
    let scale = cfg.alpha / cfg.rank as f64;
    let mut updates = HashMap::new();
    let mut masks = Vec::new();
    for (module, shape, _, _) in &found {
        let fan_in: usize = shape[1..].iter().product();
        // PyTorch's kaiming_uniform_(a = sqrt(5)), as PEFT initialises A.
        let bound = 1.0 / (fan_in as f64).sqrt();
        let a = vb.get_with_hints(
            (cfg.rank, fan_in),
            &format!("{module}.lora_A"),
            candle_nn::Init::Uniform { lo: -bound, up: bound },
        )?;
        let b = vb.get_with_hints((shape[0], cfg.rank), &format!("{module}.lora_B"), candle_nn::Init::Const(0.0))?;
        let update = LowRank::new(a, b, scale)?;
        masks.push(update.mask());
        updates.insert(format!("{module}.weight"), update);
    }
    model.visit_mut(&mut |path, entry| {
        if let EntryMut::Param(p) = entry {
            p.set_frozen(!matches_any(&cfg.train_also, path));
        }
    });
    let mut failure = None;
    model.visit_mut(&mut |path, entry| {
        if let EntryMut::Param(p) = entry {
            if let Some(update) = updates.remove(path) {
                if let Err(e) = p.attach_low_rank(update) {
                    failure.get_or_insert(e);
                }
            }
        }
    });
    if let Some(e) = failure {
        return Err(e.into());
    }
    Ok(LoraAdapters {
        store,
        masks,
        train_also: cfg.train_also.clone(),
        rank: cfg.rank,
        alpha: cfg.alpha,
        dropout: cfg.dropout,
        dtype,
        target_patterns: cfg.targets.clone(),
        rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(cfg.seed ^ 0x10ba)),
    })
}

impl LoraAdapters {
    /// The adapters' variables (`{layer}.lora_A`, `{layer}.lora_B`).
    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    /// Number of adapted layers.
    pub fn num_targets(&self) -> usize {
        self.masks.len()
    }

    /// Draws new rank-dropout masks before a training forward pass (`train`), or clears them
    /// for evaluation. A no-op without dropout.
    pub fn prepare(&self, train: bool, device: &candle_core::Device) -> candle_core::Result<()> {
        if self.dropout == 0.0 {
            return Ok(());
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let keep = 1.0 / (1.0 - self.dropout);
        for slot in &self.masks {
            let mask = if train {
                let m: Vec<f64> =
                    (0..self.rank).map(|_| if rng.random::<f64>() < self.dropout { 0.0 } else { keep }).collect();
                Some(Tensor::from_vec(m, (1, self.rank), device)?.to_dtype(self.dtype)?)
            } else {
                None
            };
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = mask;
        }
        Ok(())
    }

    /// Adds `(alpha / rank) · B A` into every adapted weight of `model` and resets `B` to zero,
    /// so the base weights alone now compute what the adapted model computed (and the adapted
    /// model still does). Returns the number of merged layers.
    pub fn merge(&self, model: &mut (impl ModuleTree + ?Sized)) -> Result<usize> {
        self.prepare(false, self.store.device())?;
        let mut merged = 0;
        let mut failure = None;
        model.visit_mut(&mut |_, entry| {
            if let EntryMut::Param(p) = entry {
                match p.merge_low_rank() {
                    Ok(true) => merged += 1,
                    Ok(false) => {}
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                }
            }
        });
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(merged),
        }
    }
}

/// A fine-tuning model with LoRA adapters on its targeted layers ([`attach_lora`] on its
/// network, batch norms frozen as [`LoraConfig::frozen_batch_norms`] says). See the module docs.
pub struct LoraModel {
    model: FineTuneModel,
    adapters: LoraAdapters,
}

impl std::fmt::Debug for LoraModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoraModel").field("adapters", &self.adapters).finish()
    }
}

impl LoraModel {
    /// Adapters on every `Linear` and `Conv2d` layer of `model` matching `cfg.targets`; fails
    /// when none matches.
    pub fn new(mut model: FineTuneModel, cfg: LoraConfig) -> Result<Self> {
        let adapters = attach_lora(&mut model.network, &cfg)?;
        let frozen = cfg.frozen_batch_norms;
        model.network.set_batch_norms_frozen(&|_| frozen);
        Ok(Self { model, adapters })
    }

    /// The adapters (`{layer}.lora_A`, `{layer}.lora_B`).
    pub fn adapters(&self) -> &ParamStore {
        self.adapters.store()
    }

    /// The wrapped model (its store holds the base weights).
    pub fn base(&self) -> &FineTuneModel {
        &self.model
    }

    /// Number of adapted layers.
    pub fn num_targets(&self) -> usize {
        self.adapters.num_targets()
    }

    /// What an optimizer should get: the adapters and the base parameters matching
    /// [`LoraConfig::train_also`] (the network's unfrozen parameters).
    pub fn trainable(&self) -> Vec<(String, Var)> {
        trainable_vars(&self.model.network)
    }

    /// Number of trainable scalars ([`LoraModel::trainable`]).
    pub fn num_trainable(&self) -> usize {
        self.trainable().iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Adds `(alpha / rank) · B A` into every target's base weight and resets `B` to zero, so
    /// the base model alone now computes what the adapted model computed (and this model still
    /// does). Returns the number of merged layers.
    pub fn merge(&mut self) -> Result<usize> {
        self.adapters.merge(&mut self.model.network)
    }

    /// Unwraps the base model: the adapters come off (after [`LoraModel::merge`], this is the
    /// fine-tuned model) and every parameter is trainable again.
    pub fn into_base(mut self) -> FineTuneModel {
        self.model.network.visit_mut(&mut |_, entry| {
            if let EntryMut::Param(p) = entry {
                p.take_low_rank();
                p.set_frozen(false);
            }
        });
        self.model.network.set_batch_norms_frozen(&|_| false);
        self.model
    }

    fn train_also_state(&self) -> Vec<(String, Tensor)> {
        let patterns = &self.adapters.train_also;
        self.model.store.state().into_iter().filter(|(n, _)| matches_any(patterns, n)).collect()
    }

    /// Saves the adapters and the `train_also` parameters (not the frozen base) to a
    /// safetensors file, atomically, with rank, alpha and targets in its metadata.
    pub fn save_adapters(&self, path: &Path) -> Result<()> {
        let mut tensors = self.adapters.store.state();
        tensors.extend(self.train_also_state());
        let a = &self.adapters;
        let meta = serde_json::json!({
            "rank": a.rank, "alpha": a.alpha, "targets": a.target_patterns, "train_also": a.train_also,
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
            self.adapters.store.state().into_iter().map(|(n, t)| (n, t.dims().to_vec())).collect();
        expected.extend(self.train_also_state().into_iter().map(|(n, t)| (n, t.dims().to_vec())));
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
                self.adapters.store.assign(&n, &t)?;
            } else {
                self.model.store.assign(&n, &t)?;
            }
        }
        Ok(())
    }
}

impl ModuleT for LoraModel {
    fn forward_t(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.adapters.prepare(train, xs.device())?;
        self.model.forward_t(xs, train)
    }
}
