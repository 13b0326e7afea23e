//! Adam (Kingma & Ba, 2015), step for step as PyTorch's `torch.optim.Adam`.

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};

use crate::optimizer::{Optimizer, OptimizerState};

/// Hyper-parameters of [`Adam`]; defaults are PyTorch's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Decay of the first moment (default 0.9).
    pub beta1: f64,
    /// Decay of the second moment (default 0.999).
    pub beta2: f64,
    /// Added to the denominator for stability (default 1e-8).
    pub eps: f64,
    /// L2 penalty added to the gradient, `g += weight_decay * p` (default 0).
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

struct Slot {
    name: String,
    param: Var,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    step: u64,
}

/// Adam. For each parameter `p` with gradient `g`, at its step `t`:
///
/// ```text
/// g  = g + weight_decay * p
/// m  = m + (1 - β1) (g - m)
/// v  = β2 v + (1 - β2) g²
/// p  = p - lr / (1 - β1^t) * m / (sqrt(v) / sqrt(1 - β2^t) + ε)
/// ```
pub struct Adam {
    cfg: AdamConfig,
    slots: Vec<Slot>,
}

impl std::fmt::Debug for Adam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adam").field("cfg", &self.cfg).field("params", &self.slots.len()).finish()
    }
}

impl Adam {
    /// Adam over `params` (name, variable). Names must be unique.
    pub fn new(params: Vec<(String, Var)>, cfg: AdamConfig) -> Result<Self> {
        let mut seen = std::collections::BTreeSet::new();
        let mut slots = Vec::with_capacity(params.len());
        for (name, param) in params {
            if !seen.insert(name.clone()) {
                candle_core::bail!("adam: parameter `{name}` given twice")
            }
            if !param.dtype().is_float() {
                candle_core::bail!("adam: parameter `{name}` has non-float dtype {:?}", param.dtype())
            }
            let exp_avg = param.zeros_like()?;
            let exp_avg_sq = param.zeros_like()?;
            slots.push(Slot { name, param, exp_avg, exp_avg_sq, step: 0 });
        }
        Ok(Self { cfg, slots })
    }

    /// Current hyper-parameters (the learning rate and β1 follow any schedule).
    pub fn config(&self) -> &AdamConfig {
        &self.cfg
    }
}

impl Optimizer for Adam {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let AdamConfig { lr, beta1, beta2, eps, weight_decay } = self.cfg;
        for slot in &mut self.slots {
            let Some(grad) = grads.get(&slot.param) else { continue };
            slot.step += 1;
            let t = slot.step as i32;
            let param = slot.param.as_tensor();
            let grad = if weight_decay != 0.0 { (grad + (param * weight_decay)?)? } else { grad.clone() };
            let exp_avg = ((&grad - &slot.exp_avg)?.affine(1.0 - beta1, 0.0)? + &slot.exp_avg)?;
            let exp_avg_sq = ((&slot.exp_avg_sq * beta2)? + (grad.sqr()? * (1.0 - beta2))?)?;
            let step_size = lr / (1.0 - beta1.powi(t));
            let bias_correction2_sqrt = (1.0 - beta2.powi(t)).sqrt();
            let denom = (exp_avg_sq.sqrt()? / bias_correction2_sqrt)? + eps;
            let update = ((&exp_avg / denom?)? * step_size)?;
            slot.param.set(&(param - update)?)?;
            slot.exp_avg = exp_avg;
            slot.exp_avg_sq = exp_avg_sq;
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.cfg.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    fn set_momentum(&mut self, momentum: f64) {
        self.cfg.beta1 = momentum;
    }

    fn state(&self) -> OptimizerState {
        let mut buffers = BTreeMap::new();
        let mut step = 0;
        for s in &self.slots {
            buffers.insert(format!("{}.exp_avg", s.name), s.exp_avg.clone());
            buffers.insert(format!("{}.exp_avg_sq", s.name), s.exp_avg_sq.clone());
            // Steps are kept per parameter, as PyTorch does (a parameter without a gradient
            // does not advance its bias correction).
            if let Ok(t) = Tensor::new(s.step as f64, s.param.device()) {
                buffers.insert(format!("{}.step", s.name), t);
            }
            step = step.max(s.step);
        }
        OptimizerState { buffers, step }
    }

    fn load_state(&mut self, mut state: OptimizerState) -> Result<()> {
        let mut restored = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let mut take = |slot: &str, shape: &[usize]| -> Result<Tensor> {
                let key = format!("{}.{slot}", s.name);
                let t = state
                    .buffers
                    .remove(&key)
                    .ok_or_else(|| candle_core::Error::Msg(format!("adam state: missing buffer `{key}`")))?;
                if t.dims() != shape {
                    candle_core::bail!(
                        "adam state: buffer `{key}` has shape {:?}, parameter needs {:?}",
                        t.dims(),
                        shape
                    )
                }
                Ok(t)
            };
            let exp_avg = take("exp_avg", s.param.dims())?.to_dtype(s.param.dtype())?;
            let exp_avg_sq = take("exp_avg_sq", s.param.dims())?.to_dtype(s.param.dtype())?;
            let step = take("step", &[])?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if step < 0.0 || step.fract() != 0.0 {
                candle_core::bail!("adam state: `{}.step` is {step}, not a step count", s.name)
            }
            restored.push((exp_avg, exp_avg_sq, step as u64));
        }
        if let Some(unknown) = state.buffers.keys().next() {
            candle_core::bail!("adam state: buffer `{unknown}` matches no parameter")
        }
        for (s, (exp_avg, exp_avg_sq, step)) in self.slots.iter_mut().zip(restored) {
            s.exp_avg = exp_avg;
            s.exp_avg_sq = exp_avg_sq;
            s.step = step;
        }
        Ok(())
    }
}
