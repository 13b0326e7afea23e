//! A chain of layers named the way PyTorch's `nn.Sequential` names them.

use candle_core::{Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};

use crate::{Entry, EntryMut, LayerKind, ModulePath, ModuleTree};

/// What a [`Sequential`] holds: a layer it can run and walk as part of the model tree
/// (every layer of this crate, and any `#[derive(ModuleTree)]` struct implementing `ModuleT`).
pub trait SequentialLayer: ModuleT + ModuleTree + Send + Sync {}

impl<T: ModuleT + ModuleTree + Send + Sync> SequentialLayer for T {}

/// Layers applied one after the other, each with the same train/eval flag.
///
/// Built with [`Sequential::builder`], layer `i` reads its parameters under `{prefix}.{i}`
/// (`features.0.weight`, `features.1.running_mean`), and parameterless layers still take an
/// index, exactly as in PyTorch's `state_dict`, so weights exported from an `nn.Sequential` load
/// as they are.
///
/// # Shapes
/// - input: the first layer's input
/// - output: the last layer's output
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn SequentialLayer>>,
}

impl std::fmt::Debug for Sequential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequential").field("layers", &self.layers.len()).finish()
    }
}

impl Sequential {
    /// An empty chain (the identity).
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder whose `i`-th layer is created under `{vb}.{i}`.
    pub fn builder(vb: VarBuilder<'_>) -> SequentialBuilder<'_> {
        SequentialBuilder { vb, seq: Sequential::new() }
    }

    /// Appends a layer.
    pub fn push(&mut self, layer: impl SequentialLayer + 'static) {
        self.layers.push(Box::new(layer));
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether the chain has no layer.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl ModuleT for Sequential {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.layers.iter().try_fold(xs.clone(), |xs, layer| layer.forward_t(&xs, train))
    }
}

/// Layer `i` is visited under `{path}.{i}`, parameterless ones included.
impl ModuleTree for Sequential {
    fn visit_at<'a>(&'a self, path: &mut ModulePath, f: &mut dyn FnMut(&str, Entry<'a>)) {
        f(path.as_str(), Entry::Layer(LayerKind::Sequential));
        self.layers.visit_at(path, f);
    }

    fn visit_mut_at(&mut self, path: &mut ModulePath, f: &mut dyn FnMut(&str, EntryMut<'_>)) {
        f(path.as_str(), EntryMut::Layer(LayerKind::Sequential, Some(self)));
        self.layers.visit_mut_at(path, f);
    }
}

/// Builds a [`Sequential`], handing each layer the `VarBuilder` for its index.
pub struct SequentialBuilder<'a> {
    vb: VarBuilder<'a>,
    seq: Sequential,
}

impl std::fmt::Debug for SequentialBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SequentialBuilder").field("prefix", &self.vb.prefix()).field("layers", &self.seq.len()).finish()
    }
}

impl<'a> SequentialBuilder<'a> {
    /// Appends the layer `make` builds from `{prefix}.{index}`.
    pub fn layer<M, F>(mut self, make: F) -> Result<Self>
    where
        M: SequentialLayer + 'static,
        F: FnOnce(VarBuilder<'a>) -> Result<M>,
    {
        let layer = make(self.vb.pp(self.seq.len().to_string()))?;
        self.seq.push(layer);
        Ok(self)
    }

    /// Appends a layer without parameters (it still takes an index, as in PyTorch).
    pub fn stateless(mut self, layer: impl SequentialLayer + 'static) -> Self {
        self.seq.push(layer);
        self
    }

    /// The finished chain.
    pub fn build(self) -> Sequential {
        self.seq
    }
}
