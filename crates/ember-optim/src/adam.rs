//! Adam (Kingma & Ba, 2015), AMSGrad (Reddi et al., 2018) and AdamW (Loshchilov & Hutter,
//! 2019), step for step as PyTorch's `torch.optim.Adam` / `AdamW`.

use candle_core::Tensor;

use crate::check::{check, Range::*};
use crate::fused::{div_scalar, with_l2_penalty, Defaults, FusedOptimizer, Hyper, TensorUpdate, UpdateRule};
use crate::real::Real;
use crate::Result;

/// Hyper-parameters of [`Adam`]; [`AdamConfig::default`] is PyTorch's `Adam`,
/// [`AdamConfig::adamw`] PyTorch's `AdamW`.
///
/// For each parameter `p` with gradient `g`, at its step `t`:
/// ```text
/// p  = p (1 - lr weight_decay)       decoupled (AdamW)      g = g + weight_decay p   otherwise (L2)
/// m  = m + (1 - β1) (g - m)
/// v  = β2 v + (1 - β2) g²
/// v̂  = max(v̂, v) with AMSGrad, else v
/// p  = p - lr / (1 - β1^t) * m / (sqrt(v̂) / sqrt(1 - β2^t) + ε)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct AdamConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Decay of the first moment (default 0.9).
    pub beta1: f64,
    /// Decay of the second moment (default 0.999).
    pub beta2: f64,
    /// Added to the denominator for stability (default 1e-8).
    pub eps: f64,
    /// Weight decay (default 0; AdamW's default 1e-2).
    pub weight_decay: f64,
    /// AMSGrad: divide by the running maximum of the second moment.
    pub amsgrad: bool,
    /// Decoupled weight decay (AdamW) instead of an L2 term in the gradient.
    pub decoupled_weight_decay: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            decoupled_weight_decay: false,
        }
    }
}

impl AdamConfig {
    /// PyTorch's `AdamW` defaults: decoupled weight decay 1e-2.
    pub fn adamw() -> Self {
        Self { weight_decay: 1e-2, decoupled_weight_decay: true, ..Self::default() }
    }
}

/// Adam, AMSGrad or AdamW; see [`AdamConfig`].
pub type Adam = FusedOptimizer<AdamConfig>;

impl UpdateRule for AdamConfig {
    const NAME: &'static str = "adam";

    fn slot_names(&self) -> &'static [&'static str] {
        if self.amsgrad {
            &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
        } else {
            &["exp_avg", "exp_avg_sq"]
        }
    }

    fn validate_own(&self) -> Result<()> {
        check(
            Self::NAME,
            &[("beta1", self.beta1, Fraction), ("beta2", self.beta2, Fraction), ("eps", self.eps, NonNegative)],
        )
    }

    fn defaults(&self) -> Defaults {
        Defaults { lr: self.lr, weight_decay: self.weight_decay, momentum: Some(self.beta1) }
    }

    type Coefficients<T: Real> = AdamCoefficients<T>;

    fn coefficients<T: Real>(&self, h: &Hyper, step: u64) -> AdamCoefficients<T> {
        let t = step as i32;
        let beta1 = h.momentum;
        let step_size = h.lr / (1.0 - beta1.powi(t));
        let bias_correction2_sqrt = (1.0 - self.beta2.powi(t)).sqrt();
        let (l2, decay) =
            if self.decoupled_weight_decay { (0.0, 1.0 - h.lr * h.weight_decay) } else { (h.weight_decay, 1.0) };
        AdamCoefficients {
            l2: T::of(l2),
            decay: T::of(decay),
            one_minus_beta1: T::of(1.0 - beta1),
            beta2: T::of(self.beta2),
            one_minus_beta2: T::of(1.0 - self.beta2),
            step_size: T::of(step_size),
            bias_correction2_sqrt: T::of(bias_correction2_sqrt),
            eps: T::of(self.eps),
            amsgrad: self.amsgrad,
        }
    }

    #[inline(always)]
    fn apply<T: Real>(c: &AdamCoefficients<T>, p: &mut T, g: T, s: &mut [T]) {
        let g = g + c.l2 * *p;
        let p0 = *p * c.decay;
        let m = s[0] + c.one_minus_beta1 * (g - s[0]);
        let v = s[1] * c.beta2 + g * g * c.one_minus_beta2;
        s[0] = m;
        s[1] = v;
        let v_hat = if c.amsgrad {
            s[2] = s[2].max_nan(v);
            s[2]
        } else {
            v
        };
        let denom = v_hat.sqrt() / c.bias_correction2_sqrt + c.eps;
        *p = p0 + (-c.step_size) * (m / denom);
    }

    fn apply_tensors(c: &AdamCoefficients<f64>, p: &Tensor, g: &Tensor, s: &[Tensor]) -> TensorUpdate {
        // Terms that would add 0 or multiply by 1 are left out: one kernel fewer each on a GPU.
        let g = with_l2_penalty(g, p, c.l2)?;
        let p0 = if c.decay != 1.0 { p.affine(c.decay, 0.0)? } else { p.clone() };
        let m = (&s[0] + (&g - &s[0])?.affine(c.one_minus_beta1, 0.0)?)?;
        let v = (s[1].affine(c.beta2, 0.0)? + g.sqr()?.affine(c.one_minus_beta2, 0.0)?)?;
        let mut state = vec![m.clone(), v.clone()];
        let v_hat = if c.amsgrad {
            // The new moment first: candle's `maximum` keeps its first operand when either is
            // NaN, so a NaN moment still reaches the maximum, as `max_nan` has it.
            let max = v.maximum(&s[2])?;
            state.push(max.clone());
            max
        } else {
            v
        };
        let denom = div_scalar(&v_hat.sqrt()?, c.bias_correction2_sqrt)?.affine(1.0, c.eps)?;
        Ok(((p0 + (m / denom)?.affine(-c.step_size, 0.0)?)?, state))
    }
}

/// The scalars of one Adam step of one parameter (see [`AdamConfig`]'s update).
#[derive(Debug, Clone, Copy)]
pub struct AdamCoefficients<T> {
    /// L2 penalty added to the gradient (0 with decoupled decay).
    l2: T,
    /// Factor of the decoupled decay, `1 - lr weight_decay` (1 without).
    decay: T,
    one_minus_beta1: T,
    beta2: T,
    one_minus_beta2: T,
    /// `lr / (1 - β1^t)`.
    step_size: T,
    /// `sqrt(1 - β2^t)`.
    bias_correction2_sqrt: T,
    eps: T,
    amsgrad: bool,
}
