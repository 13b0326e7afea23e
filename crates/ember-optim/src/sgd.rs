//! Stochastic gradient descent with momentum, dampening and Nesterov momentum, as PyTorch's
//! `torch.optim.SGD`. Batch, mini-batch and online gradient descent are the same rule; only the
//! data fed to each step differs.

use candle_core::Tensor;

use crate::fused::{with_l2_penalty, Defaults, FusedOptimizer, Hyper, TensorUpdate, UpdateRule};
use crate::real::Real;
use crate::{Error, Result};

/// Hyper-parameters of [`Sgd`]; defaults are PyTorch's (lr 1e-3, no momentum).
///
/// With gradient `g`, at step `t`:
/// ```text
/// d = g + weight_decay * p                      (L2 penalty)
/// b = d                          if t = 1       (momentum buffer)
/// b = momentum * b + (1 - dampening) * d        otherwise
/// d = d + momentum * b  (Nesterov)   or   d = b   (momentum > 0)
/// p = p - lr * d
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0 disables the momentum buffer).
    pub momentum: f64,
    /// Dampening of the gradient added to the momentum buffer.
    pub dampening: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum (needs momentum > 0 and dampening 0).
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self { lr: 1e-3, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false }
    }
}

/// SGD; see [`SgdConfig`].
pub type Sgd = FusedOptimizer<SgdConfig>;

impl UpdateRule for SgdConfig {
    const NAME: &'static str = "sgd";

    fn slot_names(&self) -> &'static [&'static str] {
        if self.momentum != 0.0 {
            &["momentum_buffer"]
        } else {
            &[]
        }
    }

    fn validate_own(&self) -> Result<()> {
        // Nesterov's look-ahead is taken along an undamped momentum buffer (PyTorch's rule).
        let nesterov = |setting, value, requirement| {
            Err(Error::InvalidConfig { optimizer: Self::NAME, setting, value, requirement })
        };
        if self.nesterov && self.momentum <= 0.0 {
            return nesterov("momentum", self.momentum, "must be above 0 for Nesterov momentum");
        }
        if self.nesterov && self.dampening != 0.0 {
            return nesterov("dampening", self.dampening, "must be 0 for Nesterov momentum");
        }
        Ok(())
    }

    fn defaults(&self) -> Defaults {
        Defaults::switchable_momentum(self.lr, self.weight_decay, self.momentum)
    }

    type Coefficients<T: Real> = SgdCoefficients<T>;

    fn coefficients<T: Real>(&self, h: &Hyper, step: u64) -> SgdCoefficients<T> {
        let (keep, add) = if step == 1 { (0.0, 1.0) } else { (h.momentum, 1.0 - self.dampening) };
        SgdCoefficients {
            lr: T::of(h.lr),
            weight_decay: T::of(h.weight_decay),
            keep: T::of(keep),
            add: T::of(add),
            momentum: T::of(h.momentum),
            nesterov: self.nesterov,
            has_momentum: self.momentum != 0.0,
        }
    }

    #[inline(always)]
    fn apply<T: Real>(c: &SgdCoefficients<T>, p: &mut T, g: T, s: &mut [T]) {
        let mut d = g + c.weight_decay * *p;
        if c.has_momentum {
            let b = c.keep * s[0] + c.add * d;
            s[0] = b;
            d = if c.nesterov { d + c.momentum * b } else { b };
        }
        *p = *p - c.lr * d;
    }

    fn apply_tensors(c: &SgdCoefficients<f64>, p: &Tensor, g: &Tensor, s: &[Tensor]) -> TensorUpdate {
        let mut d = with_l2_penalty(g, p, c.weight_decay)?;
        let mut state = Vec::with_capacity(s.len());
        if c.has_momentum {
            let b = (s[0].affine(c.keep, 0.0)? + d.affine(c.add, 0.0)?)?;
            d = if c.nesterov { (d + b.affine(c.momentum, 0.0)?)? } else { b.clone() };
            state.push(b);
        }
        Ok(((p - d.affine(c.lr, 0.0)?)?, state))
    }
}

/// The scalars of one SGD step of one parameter (see [`SgdConfig`]'s update).
#[derive(Debug, Clone, Copy)]
pub struct SgdCoefficients<T> {
    lr: T,
    weight_decay: T,
    /// Share of the old momentum buffer kept (0 on the first step, which starts the buffer).
    keep: T,
    /// Share of the gradient added to the buffer (`1 - dampening`; 1 on the first step).
    add: T,
    momentum: T,
    nesterov: bool,
    has_momentum: bool,
}
