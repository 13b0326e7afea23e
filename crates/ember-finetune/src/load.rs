//! Loading named tensors into a model's `ParamStore`: strict or lenient, with a report of what
//! matched, and optional renaming of the checkpoint's keys.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Tensor, Var};
use ember_layers::{Entry, ModuleTree, ParamStore};
use ember_optim::glob_match;

use crate::{read_checkpoint, Error, Result};
use ember_io::{rename_unique, RenameRule};

/// How [`load_state`] matches a checkpoint to a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Fail (loading nothing) unless every model tensor is loaded and every checkpoint tensor
    /// used, with equal shapes. Lenient loading loads what matches and reports the rest.
    pub strict: bool,
    /// Renaming rules applied to the checkpoint's names, in order, before matching.
    pub rename: Vec<RenameRule>,
    /// Glob patterns (`_fc.*`) of model tensors to leave as they are (a replaced head): neither
    /// loaded nor reported missing, and checkpoint tensors of that name are not unexpected.
    pub skip: Vec<String>,
}

impl LoadOptions {
    /// Strict loading, no renaming.
    pub fn strict() -> Self {
        Self { strict: true, ..Self::default() }
    }

    /// Lenient loading, no renaming.
    pub fn lenient() -> Self {
        Self::default()
    }

    /// Adds a renaming rule.
    pub fn with_rule(mut self, rule: RenameRule) -> Self {
        self.rename.push(rule);
        self
    }

    /// Leaves model tensors matching `pattern` untouched.
    pub fn skipping(mut self, pattern: impl Into<String>) -> Self {
        self.skip.push(pattern.into());
        self
    }
}

/// A tensor present on both sides with different shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The (renamed) name.
    pub name: String,
    /// The model's shape.
    pub model: Vec<usize>,
    /// The checkpoint's shape.
    pub checkpoint: Vec<usize>,
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Model tensors overwritten from the checkpoint.
    pub loaded: Vec<String>,
    /// Model tensors the checkpoint lacks (left at their initial values).
    pub missing: Vec<String>,
    /// Checkpoint tensors (after renaming) the model does not have.
    pub unexpected: Vec<String>,
    /// Tensors on both sides whose shapes differ (left at their initial values).
    pub mismatched: Vec<ShapeMismatch>,
    /// Model tensors left alone on purpose ([`LoadOptions::skip`]).
    pub skipped: Vec<String>,
}

impl LoadReport {
    /// Whether everything matched (what strict loading requires).
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }

    /// A one-line summary: counts and the first few names of each kind.
    pub fn summary(&self) -> String {
        fn few(names: &[String]) -> String {
            let shown: Vec<&str> = names.iter().take(3).map(String::as_str).collect();
            let more = if names.len() > 3 { format!(", ... ({} more)", names.len() - 3) } else { String::new() };
            format!("{}{more}", shown.join(", "))
        }
        let mut parts = vec![format!("{} loaded", self.loaded.len())];
        if !self.missing.is_empty() {
            parts.push(format!("{} missing: {}", self.missing.len(), few(&self.missing)));
        }
        if !self.unexpected.is_empty() {
            parts.push(format!("{} unexpected: {}", self.unexpected.len(), few(&self.unexpected)));
        }
        if !self.mismatched.is_empty() {
            let shown: Vec<String> = self
                .mismatched
                .iter()
                .take(3)
                .map(|m| format!("{} model {:?} vs checkpoint {:?}", m.name, m.model, m.checkpoint))
                .collect();
            parts.push(format!("{} shape mismatches: {}", self.mismatched.len(), shown.join(", ")));
        }
        if !self.skipped.is_empty() {
            parts.push(format!("{} skipped", self.skipped.len()));
        }
        parts.join("; ")
    }
}

/// Whether the key is one PyTorch saves but ember does not keep (see `ember_layers::BUFFER_NAMES`).
fn ignorable(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

/// Loads `tensors` into `store` by name (after `options.rename`). Strict mode checks
/// everything first and loads nothing on a mismatch ([`Error::StateMismatch`], naming the
/// tensors); lenient mode loads what matches. Two tensors renamed to one name are an error in
/// both modes ([`ember_io::Error::RenameCollision`]). `source` names the checkpoint in errors.
pub fn load_state(
    store: &ParamStore,
    tensors: Vec<(String, Tensor)>,
    options: &LoadOptions,
    source: &str,
) -> Result<LoadReport> {
    let mut targets: BTreeMap<String, Var> = store.vars().into_iter().collect();
    for name in store.buffer_names() {
        if let Some(var) = store.buffer(&name) {
            targets.insert(name, var);
        }
    }
    load_into(targets, tensors, options, source)
}

/// [`load_state`] for any model with a [`ModuleTree`]: the tensors go into its parameters and
/// buffers by their tree paths (its `state_dict` keys), whatever store (if any) they came from.
/// A parameter computed from others rather than held (none in ember's layers) is not loadable
/// and not reported.
pub fn load_tree(
    model: &(impl ModuleTree + ?Sized),
    tensors: Vec<(String, Tensor)>,
    options: &LoadOptions,
    source: &str,
) -> Result<LoadReport> {
    let mut targets = BTreeMap::new();
    let mut failure = None;
    model.visit(&mut |path, entry| {
        let var = match entry {
            Entry::Param(p) => p.var().map(Ok),
            Entry::Buffer(b) => Some(Var::from_tensor(b.tensor())),
            Entry::Layer(_) => None,
        };
        match var {
            Some(Ok(var)) => {
                targets.insert(path.to_string(), var);
            }
            Some(Err(e)) => {
                failure.get_or_insert(e);
            }
            None => {}
        }
    });
    if let Some(e) = failure {
        return Err(e.into());
    }
    load_into(targets, tensors, options, source)
}

/// The matching, checking and assigning behind [`load_state`] and [`load_tree`]: `targets`
/// maps each model tensor's name to the variable that holds it.
fn load_into(
    targets: BTreeMap<String, Var>,
    tensors: Vec<(String, Tensor)>,
    options: &LoadOptions,
    source: &str,
) -> Result<LoadReport> {
    let skipped = |name: &str| options.skip.iter().any(|p| glob_match(p, name));
    let mut report = LoadReport::default();
    let mut to_load = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let names: Vec<String> = tensors.iter().map(|(n, _)| n.clone()).collect();
    let renamed = rename_unique(&options.rename, &names, source)?;
    for (name, (_, value)) in renamed.into_iter().zip(tensors) {
        if skipped(&name) {
            continue;
        }
        match targets.get(&name) {
            None if ignorable(&name) => {}
            None => report.unexpected.push(name),
            Some(current) if current.dims() != value.dims() => {
                seen.insert(name.clone());
                report.mismatched.push(ShapeMismatch {
                    name,
                    model: current.dims().to_vec(),
                    checkpoint: value.dims().to_vec(),
                });
            }
            Some(_) => {
                seen.insert(name.clone());
                to_load.push((name, value));
            }
        }
    }
    for name in targets.keys() {
        if skipped(name) {
            report.skipped.push(name.clone());
        } else if !seen.contains(name) {
            report.missing.push(name.clone());
        }
    }
    if options.strict && !report.is_complete() {
        return Err(Error::StateMismatch { source_name: source.to_string(), summary: report.summary() });
    }
    for (name, value) in &to_load {
        check_value(targets[name].as_tensor(), name, value, source)?;
    }
    for (name, value) in to_load {
        let var = &targets[&name];
        var.set(&value.to_dtype(var.dtype())?.to_device(var.device())?)?;
        report.loaded.push(name);
    }
    Ok(report)
}

/// Reads the checkpoint at `path` (safetensors or PyTorch) and [`load_state`]s it into `store`.
pub fn load_weights(store: &ParamStore, path: &Path, options: &LoadOptions) -> Result<LoadReport> {
    let (_, tensors) = read_checkpoint(path)?;
    load_state(store, tensors, options, &path.display().to_string())
}

/// Fails unless `value` may replace the model tensor `current`: a float parameter takes float
/// values only (an integer tensor is other data, not a weight) and finite ones only. Checked for
/// every tensor before any is assigned, so a refused load changes nothing.
fn check_value(current: &Tensor, name: &str, value: &Tensor, source: &str) -> Result<()> {
    let bad = |detail: String| Error::BadTensor { path: source.into(), tensor: name.to_string(), detail };
    if current.dtype().is_float() && !value.dtype().is_float() {
        return Err(bad(format!(
            "is {:?} in the checkpoint but {:?} in the model; integer tensors do not load into float parameters",
            value.dtype(),
            current.dtype()
        )));
    }
    if !ember_kernels::all_finite(value)? {
        return Err(bad("holds NaN or infinite values".into()));
    }
    Ok(())
}
