//! Run configurations: which update rule and which learning-rate schedule a training run uses,
//! with every hyper-parameter, as values a run's TOML file, its saved JSON or its command-line
//! flags become, and the recipe defaults ember trains with.
//!
//! Both enums are internally tagged, so they sit flat in a run's settings next to everything
//! else: `{"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, ..., "scheduler": "one-cycle",
//! "pct_start": 0.3, ...}`.
//!
//! ```
//! use candle_core::{Device, Var};
//! use ember_optim::{OptimizerConfig, OptimizerKind, ScheduleConfig};
//!
//! let schedule = ScheduleConfig::OneCycle(Default::default());
//! let config = OptimizerConfig::recipe(OptimizerKind::Sgd, OptimizerKind::Sgd.default_lr(&schedule));
//! let json = serde_json::to_value(config)?;
//! assert_eq!((json["optimizer"].as_str(), json["lr"].as_f64()), (Some("sgd"), Some(0.05)));
//!
//! let w = Var::new(&[1.0f32, 2.0], &Device::Cpu)?;
//! let optimizer = config.build(vec![("w".into(), w)])?;
//! let schedule = schedule.build(config.lr(), 100)?.expect("one-cycle is a schedule");
//! assert!((schedule.learning_rate(0) - 0.05 / 25.0).abs() < 1e-12);
//! # let _ = optimizer;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use candle_core::Var;
use serde::{Deserialize, Serialize};

use crate::check::{check, Range::*};
use crate::schedule::{CosineAnnealing, StepDecay};
use crate::{
    AdagradConfig, AdamConfig, FusedOptimizer, OneCycle, Optimizer, ParamGroup, Result, RmsPropConfig, Schedule,
    SgdConfig, UpdateRule,
};

/// The update rules a run can name, spelled as in configs and flags (`"adamw"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// [`AdamConfig::default`].
    Adam,
    /// [`AdamConfig::adamw`].
    Adamw,
    /// [`SgdConfig`].
    Sgd,
    /// [`RmsPropConfig`].
    Rmsprop,
    /// [`AdagradConfig`].
    Adagrad,
}

impl OptimizerKind {
    /// ember's learning rate for this rule under `schedule` when a run names none: a one-cycle
    /// peak of 0.005 (SGD 0.05), otherwise a starting rate of 0.001 (SGD 0.01). SGD's steps are
    /// not normalised by a running gradient scale, so it needs the larger rate.
    pub fn default_lr(self, schedule: &ScheduleConfig) -> f64 {
        match (schedule, self) {
            (ScheduleConfig::OneCycle(_), Self::Sgd) => 0.05,
            (ScheduleConfig::OneCycle(_), _) => 0.005,
            (_, Self::Sgd) => 0.01,
            _ => 0.001,
        }
    }
}

/// An update rule with all its hyper-parameters; [`OptimizerConfig::build`] makes the optimizer.
/// Serialised with the rule's name under `optimizer` and its settings beside it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "optimizer")]
pub enum OptimizerConfig {
    /// Adam (or AMSGrad), weight decay as an L2 term unless `decoupled_weight_decay`.
    #[serde(rename = "adam")]
    Adam(AdamConfig),
    /// AdamW: Adam with decoupled weight decay, whatever `decoupled_weight_decay` says.
    #[serde(rename = "adamw")]
    AdamW(AdamConfig),
    /// SGD with momentum, dampening and Nesterov momentum.
    #[serde(rename = "sgd")]
    Sgd(SgdConfig),
    /// RMSprop, centred or not, with momentum.
    #[serde(rename = "rmsprop")]
    RmsProp(RmsPropConfig),
    /// Adagrad.
    #[serde(rename = "adagrad")]
    Adagrad(AdagradConfig),
}

impl OptimizerConfig {
    /// ember's recipe for `kind` at learning rate `lr`: PyTorch's defaults, except that AdamW
    /// decays weights by 0.01 and SGD takes Nesterov momentum 0.9 (plain SGD rarely trains a
    /// network from scratch in a few epochs).
    pub fn recipe(kind: OptimizerKind, lr: f64) -> Self {
        match kind {
            OptimizerKind::Adam => Self::Adam(AdamConfig { lr, ..AdamConfig::default() }),
            OptimizerKind::Adamw => Self::AdamW(AdamConfig { lr, ..AdamConfig::adamw() }),
            OptimizerKind::Sgd => Self::Sgd(SgdConfig { lr, momentum: 0.9, nesterov: true, ..SgdConfig::default() }),
            OptimizerKind::Rmsprop => Self::RmsProp(RmsPropConfig { lr, ..RmsPropConfig::default() }),
            OptimizerKind::Adagrad => Self::Adagrad(AdagradConfig { lr, ..AdagradConfig::default() }),
        }
    }

    /// Which rule this is.
    pub fn kind(&self) -> OptimizerKind {
        match self {
            Self::Adam(_) => OptimizerKind::Adam,
            Self::AdamW(_) => OptimizerKind::Adamw,
            Self::Sgd(_) => OptimizerKind::Sgd,
            Self::RmsProp(_) => OptimizerKind::Rmsprop,
            Self::Adagrad(_) => OptimizerKind::Adagrad,
        }
    }

    /// The learning rate (a schedule's peak or starting rate).
    pub fn lr(&self) -> f64 {
        match self {
            Self::Adam(c) | Self::AdamW(c) => c.lr,
            Self::Sgd(c) => c.lr,
            Self::RmsProp(c) => c.lr,
            Self::Adagrad(c) => c.lr,
        }
    }

    /// The weight decay (L2, or decoupled for AdamW).
    pub fn weight_decay(&self) -> f64 {
        match self {
            Self::Adam(c) | Self::AdamW(c) => c.weight_decay,
            Self::Sgd(c) => c.weight_decay,
            Self::RmsProp(c) => c.weight_decay,
            Self::Adagrad(c) => c.weight_decay,
        }
    }

    /// The same rule with weight decay `weight_decay`.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        match &mut self {
            Self::Adam(c) | Self::AdamW(c) => c.weight_decay = weight_decay,
            Self::Sgd(c) => c.weight_decay = weight_decay,
            Self::RmsProp(c) => c.weight_decay = weight_decay,
            Self::Adagrad(c) => c.weight_decay = weight_decay,
        }
        self
    }

    /// Checks every hyper-parameter; the error names the first one out of range and its value.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Adam(c) | Self::AdamW(c) => c.validate(),
            Self::Sgd(c) => c.validate(),
            Self::RmsProp(c) => c.validate(),
            Self::Adagrad(c) => c.validate(),
        }
    }

    /// The optimizer over `params`, all in one group.
    pub fn build(&self, params: Vec<(String, Var)>) -> Result<Box<dyn Optimizer>> {
        self.build_with_groups(vec![ParamGroup::all(params)])
    }

    /// The optimizer over parameter `groups` (see [`FusedOptimizer::with_groups`]).
    pub fn build_with_groups(&self, groups: Vec<ParamGroup>) -> Result<Box<dyn Optimizer>> {
        fn boxed<R: UpdateRule>(groups: Vec<ParamGroup>, rule: R) -> Result<Box<dyn Optimizer>> {
            Ok(Box::new(FusedOptimizer::with_groups(groups, rule)?))
        }
        match *self {
            Self::Adam(c) => boxed(groups, c),
            Self::AdamW(c) => boxed(groups, AdamConfig { decoupled_weight_decay: true, ..c }),
            Self::Sgd(c) => boxed(groups, c),
            Self::RmsProp(c) => boxed(groups, c),
            Self::Adagrad(c) => boxed(groups, c),
        }
    }
}

/// The shape of a one-cycle schedule ([`OneCycle`]); its peak is the optimizer's learning rate
/// and its length the run's. Defaults are PyTorch's `OneCycleLR`'s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OneCycleConfig {
    /// Share of the steps spent warming up.
    pub pct_start: f64,
    /// The rate starts at the peak divided by this.
    pub div_factor: f64,
    /// ... and ends at the start divided by this.
    pub final_div_factor: f64,
    /// Whether momentum (Adam's β1) cycles against the rate, between 0.95 and 0.85.
    pub cycle_momentum: bool,
}

impl Default for OneCycleConfig {
    fn default() -> Self {
        let pytorch = OneCycle::new(1.0, 1);
        Self {
            pct_start: pytorch.pct_start,
            div_factor: pytorch.div_factor,
            final_div_factor: pytorch.final_div_factor,
            cycle_momentum: pytorch.cycle_momentum,
        }
    }
}

/// Cosine annealing over the whole run ([`CosineAnnealing`]).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CosineConfig {
    /// The rate at the end of the run.
    pub eta_min: f64,
}

/// Step decay at equal parts of the run ([`StepDecay`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StepConfig {
    /// The run is cut into this many equal periods; each after the first multiplies the rate by
    /// `gamma` (default 3).
    pub periods: usize,
    /// Multiplier at each period (default 0.5).
    pub gamma: f64,
}

impl StepConfig {
    /// Halves the rate every third of the run: ember's step recipe.
    pub const HALVE_EVERY_THIRD: Self = Self { periods: 3, gamma: 0.5 };
}

impl Default for StepConfig {
    /// [`StepConfig::HALVE_EVERY_THIRD`].
    fn default() -> Self {
        Self::HALVE_EVERY_THIRD
    }
}

/// How the learning rate moves over a run; [`ScheduleConfig::build`] makes the schedule once the
/// run's length is known. Serialised with its name under `scheduler` and its settings beside it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "scheduler", rename_all = "kebab-case")]
pub enum ScheduleConfig {
    /// Warm up to the learning rate, then anneal (PyTorch `OneCycleLR`).
    OneCycle(OneCycleConfig),
    /// Cosine annealing from the learning rate to `eta_min`.
    Cosine(CosineConfig),
    /// Multiply by `gamma` at each of `periods` equal parts of the run.
    Step(StepConfig),
    /// The optimizer's learning rate throughout.
    Constant,
}

impl ScheduleConfig {
    /// The name configs and flags use (`"one-cycle"`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::OneCycle(_) => "one-cycle",
            Self::Cosine(_) => "cosine",
            Self::Step(_) => "step",
            Self::Constant => "constant",
        }
    }

    /// Whether the rate at a step depends on the run's length, so a run cannot be extended
    /// without changing the steps already taken.
    pub fn depends_on_length(&self) -> bool {
        *self != Self::Constant
    }

    /// Checks every setting; the error names the first one out of range and its value.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::OneCycle(c) => check(
                self.name(),
                &[
                    ("pct_start", c.pct_start, Share),
                    ("div_factor", c.div_factor, Positive),
                    ("final_div_factor", c.final_div_factor, Positive),
                ],
            ),
            Self::Cosine(c) => check(self.name(), &[("eta_min", c.eta_min, NonNegative)]),
            Self::Step(c) => {
                check(self.name(), &[("periods", c.periods as f64, Positive), ("gamma", c.gamma, Positive)])
            }
            Self::Constant => Ok(()),
        }
    }

    /// The schedule for a run of `total_steps` optimizer steps at learning rate `lr` (the peak,
    /// or the starting rate); `None` for a constant rate, which needs no schedule.
    pub fn build(&self, lr: f64, total_steps: usize) -> Result<Option<Box<dyn Schedule>>> {
        self.validate()?;
        Ok(match *self {
            Self::OneCycle(c) => Some(Box::new(OneCycle {
                pct_start: c.pct_start,
                div_factor: c.div_factor,
                final_div_factor: c.final_div_factor,
                cycle_momentum: c.cycle_momentum,
                ..OneCycle::new(lr, total_steps)
            })),
            Self::Cosine(c) => Some(Box::new(CosineAnnealing { base_lr: lr, t_max: total_steps, eta_min: c.eta_min })),
            Self::Step(c) => Some(Box::new(StepDecay {
                base_lr: lr,
                step_size: total_steps.div_ceil(c.periods).max(1),
                gamma: c.gamma,
            })),
            Self::Constant => None,
        })
    }
}
