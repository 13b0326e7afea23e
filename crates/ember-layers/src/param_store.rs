//! The store that owns a model's trainable parameters and its buffers.
//!
//! **Buffers** are the non-trainable state a model saves with its weights (batch norm's
//! `running_mean` and `running_var`). Layers request them through the same `VarBuilder` as
//! parameters; the store recognises them by PyTorch's names ([`BUFFER_NAMES`], the last path
//! segment) and keeps them in a separate map, so [`ParamStore::vars`] (what optimizers get)
//! holds trainable parameters only, while [`ParamStore::state`] (what a checkpoint saves) holds
//! both, keyed as PyTorch's `state_dict`. (The store sees names only, through the `VarBuilder`;
//! a built model's [`ModuleTree`](crate::ModuleTree) tells buffers by their type, [`Buffer`](crate::Buffer).)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use ember_kernels::init::Init;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Last path segments that name buffers rather than trainable parameters (PyTorch's names).
pub const BUFFER_NAMES: &[&str] = &["running_mean", "running_var", "num_batches_tracked"];

fn is_buffer(name: &str) -> bool {
    BUFFER_NAMES.contains(&name.rsplit('.').next().unwrap_or(name))
}

/// Named trainable parameters and buffers (`candle_core::Var`s), created on first request with initial
/// values drawn from a seeded RNG.
///
/// Cloning is cheap and shares the parameters. Names are kept sorted, so iteration order
/// (and therefore optimizer and checkpoint order) is the same on every run.
#[derive(Clone)]
pub struct ParamStore {
    inner: Arc<Mutex<Inner>>,
    device: Device,
}

struct Inner {
    vars: BTreeMap<String, Var>,
    buffers: BTreeMap<String, Var>,
    rng: StdRng,
}

impl std::fmt::Debug for ParamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamStore").field("names", &self.names()).field("device", &self.device).finish()
    }
}

impl ParamStore {
    /// An empty store whose initial values are drawn from `StdRng::seed_from_u64(seed)`.
    pub fn new(seed: u64, device: &Device) -> Self {
        let inner = Inner { vars: BTreeMap::new(), buffers: BTreeMap::new(), rng: StdRng::seed_from_u64(seed) };
        Self { inner: Arc::new(Mutex::new(inner)), device: device.clone() }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-written, so recover it.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A builder that creates (or returns) parameters in this store.
    pub fn var_builder(&self, dtype: DType) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, self.device.clone())
    }

    /// The device parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Trainable parameter names, sorted (buffers excluded).
    pub fn names(&self) -> Vec<String> {
        self.lock().vars.keys().cloned().collect()
    }

    /// All trainable parameters with their names, sorted by name (buffers excluded: this is what
    /// an optimizer gets).
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.lock().vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The parameter called `name`.
    pub fn get(&self, name: &str) -> Option<Var> {
        self.lock().vars.get(name).cloned()
    }

    /// Total number of scalar parameters.
    pub fn num_parameters(&self) -> usize {
        self.lock().vars.values().map(|v| v.elem_count()).sum()
    }

    /// Snapshot of every trainable parameter's current value, sorted by name (see [`ParamStore::state`]
    /// for parameters and buffers).
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.lock().vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect()
    }

    /// Buffer names (`bn1.running_mean`, ...), sorted.
    pub fn buffer_names(&self) -> Vec<String> {
        self.lock().buffers.keys().cloned().collect()
    }

    /// The buffer called `name`; layers update it in place.
    pub fn buffer(&self, name: &str) -> Option<Var> {
        self.lock().buffers.get(name).cloned()
    }

    /// Every buffer's current value, sorted by name.
    pub fn buffers(&self) -> Vec<(String, Tensor)> {
        self.lock().buffers.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect()
    }

    /// The whole state, parameters and buffers, sorted by name: the analogue of PyTorch's
    /// `state_dict()` and what a checkpoint should save.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let inner = self.lock();
        let mut all: Vec<(String, Tensor)> =
            inner.vars.iter().chain(inner.buffers.iter()).map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Overwrites the parameter or buffer `name` with `value`; fails naming it when it does not
    /// exist or the shapes differ.
    pub fn assign(&self, name: &str, value: &Tensor) -> Result<()> {
        let var = self
            .get(name)
            .or_else(|| self.buffer(name))
            .ok_or_else(|| candle_core::Error::Msg(format!("no parameter or buffer named `{name}`")))?;
        if var.shape() != value.shape() {
            candle_core::bail!(
                "parameter `{name}`: shape {:?}, but the value has shape {:?}",
                var.shape(),
                value.shape()
            )
        }
        var.set(&value.to_dtype(var.dtype())?.to_device(var.device())?)
    }
}

fn to_ember_init(init: candle_nn::Init, shape: &Shape) -> Init {
    match init {
        candle_nn::Init::Const(c) => Init::Const(c),
        candle_nn::Init::Randn { mean, stdev } => Init::Normal { mean, std: stdev },
        candle_nn::Init::Uniform { lo, up } => Init::Uniform { lo, hi: up },
        candle_nn::Init::Kaiming { dist, fan, non_linearity } => {
            let fan = fan.for_shape(shape).max(1) as f64;
            let std = non_linearity.gain() / fan.sqrt();
            match dist {
                candle_nn::init::NormalOrUniform::Normal => Init::Normal { mean: 0.0, std },
                candle_nn::init::NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    Init::Uniform { lo: -bound, hi: bound }
                }
            }
        }
    }
}

impl SimpleBackend for ParamStore {
    fn get(&self, shape: Shape, name: &str, init: candle_nn::Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut inner = self.lock();
        let buffer = is_buffer(name);
        let existing = if buffer { inner.buffers.get(name) } else { inner.vars.get(name) };
        if let Some(var) = existing {
            if var.shape() != &shape {
                candle_core::bail!("parameter `{name}`: requested shape {shape:?}, stored shape {:?}", var.shape())
            }
            return var.as_tensor().to_dtype(dtype);
        }
        let value = to_ember_init(init, &shape).sample(shape, dtype, dev, &mut inner.rng)?;
        let var = Var::from_tensor(&value)?;
        let map = if buffer { &mut inner.buffers } else { &mut inner.vars };
        map.insert(name.to_string(), var.clone());
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(&self, name: &str, dtype: DType, _dev: &Device) -> Result<Tensor> {
        let inner = self.lock();
        match inner.vars.get(name).or_else(|| inner.buffers.get(name)) {
            Some(var) => var.as_tensor().to_dtype(dtype),
            None => candle_core::bail!("no parameter named `{name}`"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        let inner = self.lock();
        inner.vars.contains_key(name) || inner.buffers.contains_key(name)
    }
}
