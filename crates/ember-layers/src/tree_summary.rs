//! A model's table of tensors and parameter counts, from its tree alone.

use std::collections::HashMap;

use crate::{Entry, LayerKind, ModuleTree};

/// One parameter or buffer of a [`TreeSummary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRow {
    /// Its `state_dict` key.
    pub path: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Whether it is a buffer (else a parameter).
    pub buffer: bool,
    /// Whether it is a frozen parameter.
    pub frozen: bool,
}

/// One module of a [`TreeSummary`], with the counts of everything under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRow {
    /// Its path (`""` for the model itself).
    pub path: String,
    /// What it is.
    pub kind: LayerKind,
    /// Scalar parameters under it, frozen ones included.
    pub params: usize,
    /// Scalar parameters under it that are not frozen.
    pub trainable: usize,
    /// Buffer elements under it.
    pub buffer_elems: usize,
}

/// The parameter counts under one top-level name of a [`TreeSummary`] (`conv1`, `layer1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRow {
    /// The first path segment.
    pub name: String,
    /// Scalar parameters under it, frozen ones included.
    pub params: usize,
    /// Scalar parameters under it that are not frozen.
    pub trainable: usize,
    /// Buffer elements under it.
    pub buffer_elems: usize,
}

/// What a model holds, walked from its [`ModuleTree`]: every tensor, every module with the
/// counts under it, and the counts per top-level child, without running the model.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TreeSummary {
    /// Every parameter and buffer, in the tree's order.
    pub tensors: Vec<TensorRow>,
    /// Every module, in the tree's order.
    pub modules: Vec<ModuleRow>,
    /// Counts per first path segment, in order of first appearance (a `Vec` field such as
    /// `layer1` is one child, though it is no module).
    pub children: Vec<ChildRow>,
    /// Scalar parameters of the whole model.
    pub total_params: usize,
    /// Scalar parameters that are not frozen.
    pub trainable_params: usize,
    /// Buffer elements of the whole model.
    pub buffer_elems: usize,
}

/// The [`TreeSummary`] of `model`.
pub fn tree_summary(model: &(impl ModuleTree + ?Sized)) -> TreeSummary {
    let mut summary = TreeSummary::default();
    model.visit(&mut |path, entry| match entry {
        Entry::Layer(kind) => {
            summary.modules.push(ModuleRow { path: path.to_string(), kind, params: 0, trainable: 0, buffer_elems: 0 })
        }
        Entry::Param(p) => summary.tensors.push(TensorRow {
            path: path.to_string(),
            shape: p.tensor().dims().to_vec(),
            buffer: false,
            frozen: p.is_frozen(),
        }),
        Entry::Buffer(b) => summary.tensors.push(TensorRow {
            path: path.to_string(),
            shape: b.tensor().dims().to_vec(),
            buffer: true,
            frozen: false,
        }),
    });

    let module_index: HashMap<String, usize> =
        summary.modules.iter().enumerate().map(|(i, m)| (m.path.clone(), i)).collect();
    let mut child_index: HashMap<String, usize> = HashMap::new();
    for t in &summary.tensors {
        let n: usize = t.shape.iter().product();
        let (params, trainable, buffer_elems) = match (t.buffer, t.frozen) {
            (true, _) => (0, 0, n),
            (false, true) => (n, 0, 0),
            (false, false) => (n, n, 0),
        };
        summary.total_params += params;
        summary.trainable_params += trainable;
        summary.buffer_elems += buffer_elems;
        // Every module on the way from the root to the tensor: the path's dotted prefixes.
        let mut ancestors = vec![""];
        ancestors.extend(t.path.match_indices('.').map(|(i, _)| &t.path[..i]));
        for ancestor in ancestors {
            if let Some(&i) = module_index.get(ancestor) {
                let row = &mut summary.modules[i];
                row.params += params;
                row.trainable += trainable;
                row.buffer_elems += buffer_elems;
            }
        }
        let name = t.path.split('.').next().unwrap_or_default().to_string();
        let i = *child_index.entry(name.clone()).or_insert_with(|| {
            summary.children.push(ChildRow { name, params: 0, trainable: 0, buffer_elems: 0 });
            summary.children.len() - 1
        });
        let child = &mut summary.children[i];
        child.params += params;
        child.trainable += trainable;
        child.buffer_elems += buffer_elems;
    }
    summary
}

/// A count as the summaries show it, its digits grouped by threes: `with_commas(1234567)` is
/// `"1,234,567"`.
pub fn with_commas(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A table like Keras's `summary()`: every module under the model, indented by depth, with its
/// kind and the parameters under it (all, and not frozen), then the totals.
impl std::fmt::Display for TreeSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = |k: &LayerKind| match k {
            LayerKind::Module(name) => name.to_string(),
            other => format!("{other:?}"),
        };
        let rows: Vec<(String, String, String, String)> = self
            .modules
            .iter()
            .filter(|m| !m.path.is_empty())
            .map(|m| {
                let depth = m.path.matches('.').count();
                let name = m.path.rsplit('.').next().unwrap_or(&m.path);
                (
                    format!("{}{name}", "  ".repeat(depth)),
                    kind(&m.kind),
                    with_commas(m.params),
                    with_commas(m.trainable),
                )
            })
            .collect();
        let width = rows.iter().map(|r| r.0.chars().count()).chain([6]).max().unwrap_or(6);
        let kind_width = rows.iter().map(|r| r.1.len()).chain([4]).max().unwrap_or(4);
        writeln!(f, "{:<width$}  {:<kind_width$}  {:>12}  {:>12}", "module", "kind", "params", "trainable")?;
        for (name, kind, params, trainable) in &rows {
            writeln!(f, "{name:<width$}  {kind:<kind_width$}  {params:>12}  {trainable:>12}")?;
        }
        writeln!(
            f,
            "total parameters: {} ({} trainable, {} frozen); buffer elements: {}",
            with_commas(self.total_params),
            with_commas(self.trainable_params),
            with_commas(self.total_params - self.trainable_params),
            with_commas(self.buffer_elems)
        )
    }
}
