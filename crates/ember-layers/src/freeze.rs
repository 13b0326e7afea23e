//! Freezing by path pattern, for any model: parameters stop training and batch norms hold
//! their running statistics.

use crate::{glob_match, BatchNorm, EntryMut, LayerKind, ModuleTree};

/// What [`freeze`] or [`unfreeze`] changed: the paths it matched, in the tree's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FreezeReport {
    /// Parameters whose frozen flag was set (or cleared).
    pub params: Vec<String>,
    /// Batch norms put on (or released from) their running statistics.
    pub batch_norms: Vec<String>,
}

fn matches(globs: &[impl AsRef<str>], path: &str) -> bool {
    globs.iter().any(|g| glob_match(g.as_ref(), path))
}

fn set_frozen(model: &mut (impl ModuleTree + ?Sized), globs: &[impl AsRef<str>], frozen: bool) -> FreezeReport {
    let mut report = FreezeReport::default();
    model.visit_mut(&mut |path, entry| match entry {
        EntryMut::Param(p) if matches(globs, path) => {
            p.set_frozen(frozen);
            report.params.push(path.to_string());
        }
        EntryMut::Layer(LayerKind::BatchNorm, Some(layer))
            if matches(globs, path) || matches(globs, &format!("{path}.weight")) =>
        {
            if let Some(bn) = layer.downcast_mut::<BatchNorm>() {
                bn.set_frozen(frozen);
                report.batch_norms.push(path.to_string());
            }
        }
        _ => {}
    });
    report
}

/// Freezes every parameter of `model` whose path matches one of `globs` (shell-style, `*`
/// crossing dots: `layer1.*`, `*.bias`), so it gets no gradient and stays bit-identical, and
/// holds every batch norm whose path or `{path}.weight` matches on its running statistics (a
/// frozen part of a network neither trains nor drifts). Everything else is left as it was.
///
/// The optimizer should then get [`crate::trainable_vars`], or keep the matched parameters in a
/// frozen parameter group.
pub fn freeze(model: &mut (impl ModuleTree + ?Sized), globs: &[impl AsRef<str>]) -> FreezeReport {
    set_frozen(model, globs, true)
}

/// Undoes [`freeze`] for the parameters and batch norms matching `globs`.
pub fn unfreeze(model: &mut (impl ModuleTree + ?Sized), globs: &[impl AsRef<str>]) -> FreezeReport {
    set_frozen(model, globs, false)
}
