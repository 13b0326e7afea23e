//! The store that owns a model's trainable parameters.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use ember_kernels::init::Init;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Named trainable parameters (`candle_core::Var`s), created on first request with initial
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
        let inner = Inner { vars: BTreeMap::new(), rng: StdRng::seed_from_u64(seed) };
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

    /// Parameter names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.lock().vars.keys().cloned().collect()
    }

    /// All parameters with their names, sorted by name.
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

    /// Snapshot of every parameter's current value, sorted by name.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.lock().vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect()
    }

    /// Overwrites the parameter `name` with `value`; fails naming the parameter when it does not
    /// exist or the shapes differ.
    pub fn assign(&self, name: &str, value: &Tensor) -> Result<()> {
        let var = self.get(name).ok_or_else(|| candle_core::Error::Msg(format!("no parameter named `{name}`")))?;
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
        if let Some(var) = inner.vars.get(name) {
            if var.shape() != &shape {
                candle_core::bail!("parameter `{name}`: requested shape {shape:?}, stored shape {:?}", var.shape())
            }
            return var.as_tensor().to_dtype(dtype);
        }
        let value = to_ember_init(init, &shape).sample(shape, dtype, dev, &mut inner.rng)?;
        let var = Var::from_tensor(&value)?;
        inner.vars.insert(name.to_string(), var.clone());
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(&self, name: &str, dtype: DType, _dev: &Device) -> Result<Tensor> {
        match self.lock().vars.get(name) {
            Some(var) => var.as_tensor().to_dtype(dtype),
            None => candle_core::bail!("no parameter named `{name}`"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.lock().vars.contains_key(name)
    }
}
