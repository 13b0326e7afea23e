//! One model tree: what a model is made of, walked generically under PyTorch's paths.
//!
//! Every layer, and every model built from layers, implements [`ModuleTree`]: it reports
//! itself ([`Entry::Layer`]), its parameters ([`Entry::Param`]), its buffers ([`Entry::Buffer`])
//! and its child modules, each under the path PyTorch's `state_dict` gives it
//! (`layer1.0.conv1.weight`). Summaries, freezing, loading reports and adapters are then one
//! visitor each, for every model, including one the user writes with
//! `#[derive(ModuleTree)]` (see [`ember_derive::ModuleTree`](macro@crate::ModuleTree)).

use std::any::Any;

use crate::{Buffer, Param};

/// What a layer is, so generic code can pick layers by kind (batch norms to freeze, linear and
/// convolution layers to adapt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LayerKind {
    /// [`crate::Linear`].
    Linear,
    /// [`crate::Conv1d`].
    Conv1d,
    /// [`crate::Conv2d`].
    Conv2d,
    /// [`crate::ConvTranspose2d`].
    ConvTranspose2d,
    /// [`crate::BatchNorm`].
    BatchNorm,
    /// [`crate::LayerNorm`].
    LayerNorm,
    /// [`crate::GroupNorm`].
    GroupNorm,
    /// [`crate::Embedding`].
    Embedding,
    /// [`crate::Rnn`].
    Rnn,
    /// [`crate::Lstm`].
    Lstm,
    /// [`crate::Gru`].
    Gru,
    /// [`crate::Sequential`].
    Sequential,
    /// [`crate::Activation`].
    Activation,
    /// [`crate::MaxPool2d`].
    MaxPool2d,
    /// [`crate::AvgPool2d`].
    AvgPool2d,
    /// [`crate::AdaptiveAvgPool2d`] and [`crate::GlobalAvgPool2d`].
    AdaptiveAvgPool2d,
    /// [`crate::Flatten`].
    Flatten,
    /// [`crate::Dropout`] and [`crate::Dropout2d`].
    Dropout,
    /// A composite module (a block, a whole model) named by its Rust type, as
    /// `#[derive(ModuleTree)]` reports it.
    Module(&'static str),
}

impl LayerKind {
    /// A short lowercase name (`conv2d`, `batch_norm`), or the type name of a [`LayerKind::Module`].
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Linear => "linear",
            LayerKind::Conv1d => "conv1d",
            LayerKind::Conv2d => "conv2d",
            LayerKind::ConvTranspose2d => "conv_transpose2d",
            LayerKind::BatchNorm => "batch_norm",
            LayerKind::LayerNorm => "layer_norm",
            LayerKind::GroupNorm => "group_norm",
            LayerKind::Embedding => "embedding",
            LayerKind::Rnn => "rnn",
            LayerKind::Lstm => "lstm",
            LayerKind::Gru => "gru",
            LayerKind::Sequential => "sequential",
            LayerKind::Activation => "activation",
            LayerKind::MaxPool2d => "max_pool2d",
            LayerKind::AvgPool2d => "avg_pool2d",
            LayerKind::AdaptiveAvgPool2d => "adaptive_avg_pool2d",
            LayerKind::Flatten => "flatten",
            LayerKind::Dropout => "dropout",
            LayerKind::Module(name) => name,
        }
    }
}

impl std::fmt::Display for LayerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One thing a [`ModuleTree::visit`] reports, at its path.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    /// A module starts here (its parameters, buffers and children follow, under its path).
    Layer(LayerKind),
    /// A trainable parameter.
    Param(&'a Param),
    /// A buffer (running statistics).
    Buffer(&'a Buffer),
}

/// One thing a [`ModuleTree::visit_mut`] reports, at its path.
pub enum EntryMut<'a> {
    /// A module starts here. The module itself comes along as `Any` so a visitor can change
    /// the kinds it knows (`downcast_mut::<BatchNorm>()` to hold it on running statistics);
    /// `None` where a module cannot hand itself out.
    Layer(LayerKind, Option<&'a mut dyn Any>),
    /// A trainable parameter.
    Param(&'a mut Param),
    /// A buffer (running statistics).
    Buffer(&'a mut Buffer),
}

impl std::fmt::Debug for EntryMut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntryMut::Layer(kind, _) => f.debug_tuple("Layer").field(kind).finish(),
            EntryMut::Param(p) => f.debug_tuple("Param").field(p).finish(),
            EntryMut::Buffer(b) => f.debug_tuple("Buffer").field(b).finish(),
        }
    }
}

/// The path of the module being visited, as PyTorch joins it: segments separated by dots,
/// the root being the empty path. One buffer is reused for the whole walk.
#[derive(Debug, Clone, Default)]
pub struct ModulePath {
    path: String,
    /// Length of `path` before each pushed segment.
    marks: Vec<usize>,
}

impl ModulePath {
    /// The root (empty) path.
    pub fn new() -> Self {
        Self::default()
    }

    /// The path so far (`layer1.0.conv1`).
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// Descends into `segment`.
    pub fn push(&mut self, segment: &str) {
        self.marks.push(self.path.len());
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(segment);
    }

    /// The last segment (`conv1` of `layer1.0.conv1`; empty at the root).
    pub fn last(&self) -> &str {
        let start = self.marks.last().map_or(0, |&m| if m == 0 { 0 } else { m + 1 });
        &self.path[start..]
    }

    /// Goes back up one segment (a no-op at the root).
    pub fn pop(&mut self) {
        if let Some(len) = self.marks.pop() {
            self.path.truncate(len);
        }
    }

    /// Visits `child` under the segment `name` (what a container calls for each field).
    pub fn child<'a, T: ModuleTree + ?Sized>(&mut self, name: &str, child: &'a T, f: &mut dyn FnMut(&str, Entry<'a>)) {
        self.push(name);
        child.visit_at(self, f);
        self.pop();
    }

    /// Visits `child` mutably under the segment `name`.
    pub fn child_mut<T: ModuleTree + ?Sized>(
        &mut self,
        name: &str,
        child: &mut T,
        f: &mut dyn FnMut(&str, EntryMut<'_>),
    ) {
        self.push(name);
        child.visit_mut_at(self, f);
        self.pop();
    }
}

/// What a model is made of, visited in `state_dict` order under PyTorch's paths.
///
/// A module reports itself first ([`Entry::Layer`] at its own path), then its parameters and
/// buffers, then its children in order. Paths join field names with dots; `Vec` elements are
/// numbered from 0 and `None` contributes nothing, so a struct of layers has exactly the
/// `state_dict` keys of the PyTorch module with the same field names. Implement it with
/// `#[derive(ModuleTree)]`; write it by hand only where names are computed (`fc{i}`).
///
/// Not `Module`: candle's trait of that name is the forward pass.
pub trait ModuleTree {
    /// Reports everything under `path` to `f`.
    fn visit_at<'a>(&'a self, path: &mut ModulePath, f: &mut dyn FnMut(&str, Entry<'a>));

    /// Reports everything under `path` to `f`, mutably.
    fn visit_mut_at(&mut self, path: &mut ModulePath, f: &mut dyn FnMut(&str, EntryMut<'_>));

    /// Reports everything, from the root, to `f`.
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, Entry<'a>)) {
        self.visit_at(&mut ModulePath::new(), f);
    }

    /// Reports everything, from the root, to `f`, mutably.
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, EntryMut<'_>)) {
        self.visit_mut_at(&mut ModulePath::new(), f);
    }
}

/// A parameter reports itself, then the `A` and `B` of an attached low-rank update beside it
/// (`conv1.weight`, `conv1.lora_A`, `conv1.lora_B`).
impl ModuleTree for Param {
    fn visit_at<'a>(&'a self, path: &mut ModulePath, f: &mut dyn FnMut(&str, Entry<'a>)) {
        f(path.as_str(), Entry::Param(self));
        if let Some(lr) = self.low_rank() {
            let weight = path.last().to_string();
            let (a, b) = low_rank_names(&weight);
            path.pop();
            path.child(&a, lr.a(), f);
            path.child(&b, lr.b(), f);
            path.push(&weight);
        }
    }

    fn visit_mut_at(&mut self, path: &mut ModulePath, f: &mut dyn FnMut(&str, EntryMut<'_>)) {
        f(path.as_str(), EntryMut::Param(self));
        if let Some(lr) = self.low_rank_mut() {
            let weight = path.last().to_string();
            let (a, b) = low_rank_names(&weight);
            path.pop();
            path.child_mut(&a, lr.a_mut(), f);
            path.child_mut(&b, lr.b_mut(), f);
            path.push(&weight);
        }
    }
}

/// Where a low-rank update's `A` and `B` stand beside the parameter `weight`:
/// `conv1.weight` → `conv1.lora_A`, `conv1.lora_B` (PEFT's names); another parameter name gets
/// them as suffixes (`weight_ih_l0_lora_A`).
fn low_rank_names(weight: &str) -> (String, String) {
    if weight == "weight" {
        ("lora_A".into(), "lora_B".into())
    } else {
        (format!("{weight}_lora_A"), format!("{weight}_lora_B"))
    }
}

impl ModuleTree for Buffer {
    fn visit_at<'a>(&'a self, path: &mut ModulePath, f: &mut dyn FnMut(&str, Entry<'a>)) {
        f(path.as_str(), Entry::Buffer(self));
    }

    fn visit_mut_at(&mut self, path: &mut ModulePath, f: &mut dyn FnMut(&str, EntryMut<'_>)) {
        f(path.as_str(), EntryMut::Buffer(self));
    }
}

/// Absent parts (a bias, a projection shortcut) contribute nothing.
impl<T: ModuleTree> ModuleTree for Option<T> {
    fn visit_at<'a>(&'a self, path: &mut ModulePath, f: &mut dyn FnMut(&str, Entry<'a>)) {
        if let Some(inner) = self {
            inner.visit_at(path, f);
        }
    }

    fn visit_mut_at(&mut self, path: &mut ModulePath, f: &mut dyn FnMut(&str, EntryMut<'_>)) {
        if let Some(inner) = self {
            inner.visit_mut_at(path, f);
        }
    }
}

/// Elements are numbered from 0, as in PyTorch's `nn.ModuleList` and `nn.Sequential`.
impl<T: ModuleTree> ModuleTree for Vec<T> {
    fn visit_at<'a>(&'a self, path: &mut ModulePath, f: &mut dyn FnMut(&str, Entry<'a>)) {
        for (i, item) in self.iter().enumerate() {
            path.child(&i.to_string(), item, f);
        }
    }

    fn visit_mut_at(&mut self, path: &mut ModulePath, f: &mut dyn FnMut(&str, EntryMut<'_>)) {
        for (i, item) in self.iter_mut().enumerate() {
            path.child_mut(&i.to_string(), item, f);
        }
    }
}

impl<T: ModuleTree + ?Sized> ModuleTree for Box<T> {
    fn visit_at<'a>(&'a self, path: &mut ModulePath, f: &mut dyn FnMut(&str, Entry<'a>)) {
        (**self).visit_at(path, f);
    }

    fn visit_mut_at(&mut self, path: &mut ModulePath, f: &mut dyn FnMut(&str, EntryMut<'_>)) {
        (**self).visit_mut_at(path, f);
    }
}

/// Implements [`ModuleTree`] for a layer without parameters: it only reports itself.
macro_rules! stateless_module_tree {
    ($($ty:ty => $kind:ident),* $(,)?) => {$(
        impl $crate::ModuleTree for $ty {
            fn visit_at<'a>(
                &'a self,
                path: &mut $crate::ModulePath,
                f: &mut dyn FnMut(&str, $crate::Entry<'a>),
            ) {
                f(path.as_str(), $crate::Entry::Layer($crate::LayerKind::$kind));
            }

            fn visit_mut_at(
                &mut self,
                path: &mut $crate::ModulePath,
                f: &mut dyn FnMut(&str, $crate::EntryMut<'_>),
            ) {
                f(path.as_str(), $crate::EntryMut::Layer($crate::LayerKind::$kind, Some(self)));
            }
        }
    )*};
}

stateless_module_tree!(
    crate::Activation => Activation,
    crate::MaxPool2d => MaxPool2d,
    crate::AvgPool2d => AvgPool2d,
    crate::AdaptiveAvgPool2d => AdaptiveAvgPool2d,
    crate::GlobalAvgPool2d => AdaptiveAvgPool2d,
    crate::Flatten => Flatten,
    crate::Dropout => Dropout,
    crate::Dropout2d => Dropout,
);

#[cfg(test)]
mod tests {
    use super::ModulePath;

    #[test]
    fn module_path_joins_and_unwinds_segments() {
        let mut path = ModulePath::new();
        path.push("layer1");
        path.push("0");
        path.push("conv1");
        assert_eq!(path.as_str(), "layer1.0.conv1");
        path.pop();
        path.pop();
        assert_eq!(path.as_str(), "layer1");
        path.pop();
        path.pop();
        assert_eq!(path.as_str(), "");
    }
}
