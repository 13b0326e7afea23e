//! Adagrad (Duchi et al., 2011), as PyTorch's `torch.optim.Adagrad`.

use candle_core::Tensor;

use crate::check::{check, Range::*};
use crate::fused::{with_l2_penalty, Defaults, FusedOptimizer, Hyper, TensorUpdate, UpdateRule};
use crate::real::Real;
use crate::Result;

/// Hyper-parameters of [`Adagrad`]; defaults are PyTorch's.
///
/// ```text
/// g   = g + weight_decay p
/// clr = lr / (1 + (t - 1) lr_decay)
/// s   = s + g²
/// p   = p - clr g / (sqrt(s) + ε)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct AdagradConfig {
    /// Learning rate (default 1e-2).
    pub lr: f64,
    /// Learning-rate decay per step.
    pub lr_decay: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Starting value of the squared-gradient sum.
    pub initial_accumulator_value: f64,
    /// Added to the denominator (default 1e-10).
    pub eps: f64,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        Self { lr: 1e-2, lr_decay: 0.0, weight_decay: 0.0, initial_accumulator_value: 0.0, eps: 1e-10 }
    }
}

/// Adagrad; see [`AdagradConfig`].
pub type Adagrad = FusedOptimizer<AdagradConfig>;

impl UpdateRule for AdagradConfig {
    const NAME: &'static str = "adagrad";

    fn slot_names(&self) -> &'static [&'static str] {
        &["sum"]
    }

    fn initial_state(&self) -> f64 {
        self.initial_accumulator_value
    }

    fn validate_own(&self) -> Result<()> {
        check(
            Self::NAME,
            &[
                ("lr_decay", self.lr_decay, NonNegative),
                ("initial_accumulator_value", self.initial_accumulator_value, NonNegative),
                ("eps", self.eps, NonNegative),
            ],
        )
    }

    fn defaults(&self) -> Defaults {
        Defaults { lr: self.lr, weight_decay: self.weight_decay, momentum: None }
    }

    type Coefficients<T: Real> = AdagradCoefficients<T>;

    fn coefficients<T: Real>(&self, h: &Hyper, step: u64) -> AdagradCoefficients<T> {
        let clr = h.lr / (1.0 + (step as f64 - 1.0) * self.lr_decay);
        AdagradCoefficients { clr: T::of(clr), weight_decay: T::of(h.weight_decay), eps: T::of(self.eps) }
    }

    #[inline(always)]
    fn apply<T: Real>(c: &AdagradCoefficients<T>, p: &mut T, g: T, s: &mut [T]) {
        let g = g + c.weight_decay * *p;
        s[0] = s[0] + g * g;
        *p = *p + (-c.clr) * (g / (s[0].sqrt() + c.eps));
    }

    fn apply_tensors(c: &AdagradCoefficients<f64>, p: &Tensor, g: &Tensor, s: &[Tensor]) -> TensorUpdate {
        let g = with_l2_penalty(g, p, c.weight_decay)?;
        let sum = (&s[0] + g.sqr()?)?;
        let p = (p + (g / sum.sqrt()?.affine(1.0, c.eps)?)?.affine(-c.clr, 0.0)?)?;
        Ok((p, vec![sum]))
    }
}

/// The scalars of one Adagrad step of one parameter (see [`AdagradConfig`]'s update).
#[derive(Debug, Clone, Copy)]
pub struct AdagradCoefficients<T> {
    /// The decayed learning rate `lr / (1 + (t - 1) lr_decay)`.
    clr: T,
    weight_decay: T,
    eps: T,
}
