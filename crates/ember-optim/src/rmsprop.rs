//! RMSprop (Hinton, 2012), with the centred variant (Graves, 2013) and momentum, as PyTorch's
//! `torch.optim.RMSprop`.

use candle_core::Tensor;

use crate::check::{check, Range::*};
use crate::fused::{with_l2_penalty, Defaults, FusedOptimizer, Hyper, TensorUpdate, UpdateRule};
use crate::real::Real;
use crate::Result;

/// Hyper-parameters of [`RmsProp`]; defaults are PyTorch's.
///
/// ```text
/// g  = g + weight_decay p
/// s  = α s + (1 - α) g²
/// ḡ  = ḡ + (1 - α)(g - ḡ);  a = sqrt(s - ḡ²) + ε      (centred)
///                            a = sqrt(s) + ε           (otherwise)
/// b  = momentum b + g / a;  p = p - lr b               (momentum > 0)
/// p  = p - lr g / a                                    (otherwise)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RmsPropConfig {
    /// Learning rate (default 1e-2).
    pub lr: f64,
    /// Smoothing constant α (default 0.99).
    pub alpha: f64,
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Momentum factor (0 disables the buffer).
    pub momentum: f64,
    /// Normalise by an estimate of the gradient's variance instead of its second moment.
    pub centered: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        Self { lr: 1e-2, alpha: 0.99, eps: 1e-8, weight_decay: 0.0, momentum: 0.0, centered: false }
    }
}

/// RMSprop; see [`RmsPropConfig`].
pub type RmsProp = FusedOptimizer<RmsPropConfig>;

impl UpdateRule for RmsPropConfig {
    const NAME: &'static str = "rmsprop";

    fn slot_names(&self) -> &'static [&'static str] {
        match (self.momentum != 0.0, self.centered) {
            (false, false) => &["square_avg"],
            (true, false) => &["square_avg", "momentum_buffer"],
            (false, true) => &["square_avg", "grad_avg"],
            (true, true) => &["square_avg", "momentum_buffer", "grad_avg"],
        }
    }

    fn validate_own(&self) -> Result<()> {
        check(Self::NAME, &[("alpha", self.alpha, NonNegative), ("eps", self.eps, NonNegative)])
    }

    fn defaults(&self) -> Defaults {
        Defaults::switchable_momentum(self.lr, self.weight_decay, self.momentum)
    }

    type Coefficients<T: Real> = RmsPropCoefficients<T>;

    fn coefficients<T: Real>(&self, h: &Hyper, _step: u64) -> RmsPropCoefficients<T> {
        let has_momentum = self.momentum != 0.0;
        RmsPropCoefficients {
            lr: T::of(h.lr),
            weight_decay: T::of(h.weight_decay),
            alpha: T::of(self.alpha),
            one_minus_alpha: T::of(1.0 - self.alpha),
            eps: T::of(self.eps),
            momentum: T::of(h.momentum),
            has_momentum,
            centered: self.centered,
            grad_avg: if has_momentum { 2 } else { 1 },
        }
    }

    #[inline(always)]
    fn apply<T: Real>(c: &RmsPropCoefficients<T>, p: &mut T, g: T, s: &mut [T]) {
        let g = g + c.weight_decay * *p;
        let sq = s[0] * c.alpha + g * g * c.one_minus_alpha;
        s[0] = sq;
        let avg = if c.centered {
            let i = c.grad_avg;
            let ga = s[i] + c.one_minus_alpha * (g - s[i]);
            s[i] = ga;
            (sq + (-(ga * ga))).sqrt() + c.eps
        } else {
            sq.sqrt() + c.eps
        };
        if c.has_momentum {
            let b = s[1] * c.momentum + g / avg;
            s[1] = b;
            *p = *p + (-c.lr) * b;
        } else {
            *p = *p + (-c.lr) * (g / avg);
        }
    }

    fn apply_tensors(c: &RmsPropCoefficients<f64>, p: &Tensor, g: &Tensor, s: &[Tensor]) -> TensorUpdate {
        let g = with_l2_penalty(g, p, c.weight_decay)?;
        let mut state = s.to_vec();
        let sq = (s[0].affine(c.alpha, 0.0)? + g.sqr()?.affine(c.one_minus_alpha, 0.0)?)?;
        let avg = if c.centered {
            let i = c.grad_avg;
            let ga = (&s[i] + (&g - &s[i])?.affine(c.one_minus_alpha, 0.0)?)?;
            let avg = (&sq - ga.sqr()?)?.sqrt()?.affine(1.0, c.eps)?;
            state[i] = ga;
            avg
        } else {
            sq.sqrt()?.affine(1.0, c.eps)?
        };
        state[0] = sq;
        let step = (g / avg)?;
        let p = if c.has_momentum {
            let b = (s[1].affine(c.momentum, 0.0)? + step)?;
            let p = (p + b.affine(-c.lr, 0.0)?)?;
            state[1] = b;
            p
        } else {
            (p + step.affine(-c.lr, 0.0)?)?
        };
        Ok((p, state))
    }
}

/// The scalars of one RMSprop step of one parameter (see [`RmsPropConfig`]'s update).
#[derive(Debug, Clone, Copy)]
pub struct RmsPropCoefficients<T> {
    lr: T,
    weight_decay: T,
    alpha: T,
    one_minus_alpha: T,
    eps: T,
    momentum: T,
    has_momentum: bool,
    centered: bool,
    /// The slot of the gradient average (after the momentum buffer, when there is one).
    grad_avg: usize,
}
