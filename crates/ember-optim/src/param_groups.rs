//! Parameter groups: per-group learning rate, weight decay and momentum, and frozen parameters.

use candle_core::Var;
use ember_kernels::glob_match;

/// Settings a group overrides; `None` keeps the optimizer's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroupOptions {
    /// Learning rate of the group (scaled along with the optimizer's by schedules).
    pub lr: Option<f64>,
    /// Weight decay of the group.
    pub weight_decay: Option<f64>,
    /// Momentum (SGD, RMSprop) or β1 (Adam) of the group.
    pub momentum: Option<f64>,
    /// A frozen group is never updated and holds no optimizer state.
    pub frozen: bool,
}

impl GroupOptions {
    /// Sets the learning rate.
    pub fn lr(mut self, lr: f64) -> Self {
        self.lr = Some(lr);
        self
    }

    /// Sets the weight decay.
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = Some(wd);
        self
    }

    /// Sets the momentum / β1.
    pub fn momentum(mut self, m: f64) -> Self {
        self.momentum = Some(m);
        self
    }

    /// Freezes the group.
    pub fn frozen() -> Self {
        Self { frozen: true, ..Self::default() }
    }
}

/// Named parameters sharing [`GroupOptions`].
#[derive(Debug, Clone)]
pub struct ParamGroup {
    /// The group's name (its pattern, or `"default"`).
    pub name: String,
    /// The parameters, with their `state_dict`-style names.
    pub params: Vec<(String, Var)>,
    /// What the group overrides.
    pub options: GroupOptions,
}

impl ParamGroup {
    /// One group holding every parameter, with the optimizer's settings.
    pub fn all(params: Vec<(String, Var)>) -> Self {
        Self { name: "default".into(), params, options: GroupOptions::default() }
    }
}

/// Splits named parameters into groups by name pattern; the first matching rule wins and
/// unmatched parameters form the `"default"` group.
///
/// Patterns are globs over the dotted name: `*` matches any run of characters (dots included),
/// so `backbone.*`, `*.bias` and `*bn*` work as expected.
///
/// ```
/// use candle_core::{Device, Var};
/// use ember_optim::{GroupOptions, ParamGroups};
///
/// let v = |x: f32| Var::new(&[x], &Device::Cpu).unwrap();
/// let params = vec![("backbone.conv.weight".to_string(), v(1.)), ("head.bias".to_string(), v(2.)), ("head.weight".to_string(), v(3.))];
/// let groups = ParamGroups::new()
///     .rule("backbone.*", GroupOptions::frozen())
///     .rule("*.bias", GroupOptions::default().weight_decay(0.0))
///     .split(params);
/// let names: Vec<_> = groups.iter().map(|g| (g.name.as_str(), g.params.len())).collect();
/// assert_eq!(names, vec![("backbone.*", 1), ("*.bias", 1), ("default", 1)]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ParamGroups {
    rules: Vec<(String, GroupOptions)>,
}

impl ParamGroups {
    /// No rules: everything in the default group.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule: parameters whose name matches `pattern` get `options`.
    pub fn rule(mut self, pattern: &str, options: GroupOptions) -> Self {
        self.rules.push((pattern.to_string(), options));
        self
    }

    /// Sorts `params` into groups, in rule order, the default group last; empty groups are
    /// dropped.
    pub fn split(&self, params: Vec<(String, Var)>) -> Vec<ParamGroup> {
        let mut groups: Vec<ParamGroup> =
            self.rules.iter().map(|(p, o)| ParamGroup { name: p.clone(), params: Vec::new(), options: *o }).collect();
        let mut default = ParamGroup::all(Vec::new());
        for (name, var) in params {
            match self.rules.iter().position(|(p, _)| glob_match(p, &name)) {
                Some(i) => groups[i].params.push((name, var)),
                None => default.params.push((name, var)),
            }
        }
        groups.push(default);
        groups.retain(|g| !g.params.is_empty());
        groups
    }
}
