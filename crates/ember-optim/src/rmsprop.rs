//! RMSprop (Hinton, 2012), with the centred variant (Graves, 2013) and momentum, as PyTorch's
//! `torch.optim.RMSprop`.

use crate::check::{check, Range::*};
use crate::fused::{Coefficients, FusedOptimizer, Hyper, UpdateRule};
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

    fn validate(&self) -> Result<()> {
        check(
            Self::NAME,
            &[
                ("lr", self.lr, NonNegative),
                ("alpha", self.alpha, NonNegative),
                ("eps", self.eps, NonNegative),
                ("weight_decay", self.weight_decay, NonNegative),
                ("momentum", self.momentum, NonNegative),
            ],
        )
    }

    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }
    fn momentum(&self) -> Option<f64> {
        (self.momentum != 0.0).then_some(self.momentum)
    }
    fn set_momentum(&mut self, momentum: f64) {
        if self.momentum != 0.0 {
            self.momentum = momentum;
        }
    }

    fn coefficients(&self, h: &Hyper, _step: u64) -> Coefficients {
        let has_momentum = self.momentum != 0.0;
        let grad_avg_slot = if has_momentum { 2.0 } else { 1.0 };
        [
            h.lr,
            h.weight_decay,
            self.alpha,
            1.0 - self.alpha,
            self.eps,
            h.momentum,
            has_momentum as u8 as f64,
            self.centered as u8 as f64,
            grad_avg_slot,
            0.,
            0.,
            0.,
        ]
    }

    #[inline(always)]
    fn apply<T: Real>(c: &[T; 12], p: &mut T, g: T, s: &mut [T]) {
        let [lr, wd, alpha, one_minus_alpha, eps, momentum, has_momentum, centered, grad_avg_slot, ..] = *c;
        let zero = T::of(0.0);
        let g = g + wd * *p;
        let sq = s[0] * alpha + g * g * one_minus_alpha;
        s[0] = sq;
        let avg = if centered > zero {
            let i = if grad_avg_slot > T::of(1.5) { 2 } else { 1 };
            let ga = s[i] + one_minus_alpha * (g - s[i]);
            s[i] = ga;
            (sq + (-(ga * ga))).sqrt() + eps
        } else {
            sq.sqrt() + eps
        };
        if has_momentum > zero {
            let b = s[1] * momentum + g / avg;
            s[1] = b;
            *p = *p + (-lr) * b;
        } else {
            *p = *p + (-lr) * (g / avg);
        }
    }
}
