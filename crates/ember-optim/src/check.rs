//! Range checks of hyper-parameters, shared by every update rule and schedule config so each
//! refuses a bad value with the same typed error, naming the setting and its value.

use crate::{Error, Result};

/// Where a hyper-parameter must lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Range {
    /// `[0, ∞)`: rates, decays, epsilons.
    NonNegative,
    /// `(0, ∞)`: divisors and counts.
    Positive,
    /// `[0, 1)`: moment decays (β) that must forget.
    Fraction,
    /// `(0, 1]`: the share of a run spent warming up.
    Share,
}

impl Range {
    fn holds(self, v: f64) -> bool {
        // Written so that NaN fails every range.
        match self {
            Self::NonNegative => v >= 0.0,
            Self::Positive => v > 0.0,
            Self::Fraction => (0.0..1.0).contains(&v),
            Self::Share => v > 0.0 && v <= 1.0,
        }
    }

    fn requirement(self) -> &'static str {
        match self {
            Self::NonNegative => "must not be negative",
            Self::Positive => "must be above 0",
            Self::Fraction => "must lie in [0, 1)",
            Self::Share => "must lie in (0, 1]",
        }
    }
}

/// Checks `(setting, value, range)` in order; the first value outside its range is the error.
pub(crate) fn check(optimizer: &'static str, settings: &[(&'static str, f64, Range)]) -> Result<()> {
    match settings.iter().find(|(_, value, range)| !range.holds(*value)) {
        Some(&(setting, value, range)) => {
            Err(Error::InvalidConfig { optimizer, setting, value, requirement: range.requirement() })
        }
        None => Ok(()),
    }
}
