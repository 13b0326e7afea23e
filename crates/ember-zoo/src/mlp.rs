//! A multi-layer perceptron on flattened images.

use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};
use ember_layers::{Activation, Entry, EntryMut, Flatten, LayerKind, Linear, ModulePath, ModuleTree};

use crate::network::{tapped, Layered, Tap};

/// Configuration for [`Mlp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlpConfig {
    /// Input features (`c * h * w` of a flattened image).
    pub inputs: usize,
    /// Width of each hidden layer.
    pub hidden: Vec<usize>,
    /// Output classes.
    pub classes: usize,
}

impl MlpConfig {
    /// The tutorial's MLP: `inputs → 256 → 128 → classes` with ReLU (235,146 parameters for
    /// MNIST).
    pub fn new(inputs: usize, classes: usize) -> Self {
        Self { inputs, hidden: vec![256, 128], classes }
    }
}

/// Flatten → (Linear → ReLU) per hidden layer → Linear, the multi-layer perceptron of
/// Rumelhart, Hinton and Williams, "Learning representations by back-propagating errors"
/// (Nature, 1986).
///
/// Parameters: `fc1.{weight,bias}`, `fc2.*`, ..., one `fc{i}` per linear layer.
///
/// # Shapes
/// - input: `(b, ...)` with `inputs` values per sample (e.g. `(b, 1, 28, 28)`)
/// - output: `(b, classes)` logits
#[derive(Debug, Clone)]
pub struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    /// Reads or creates the layers under `vb`.
    pub fn new(cfg: &MlpConfig, vb: VarBuilder) -> Result<Self> {
        let widths: Vec<usize> = std::iter::once(cfg.inputs).chain(cfg.hidden.iter().copied()).collect();
        let mut layers = Vec::new();
        for (i, pair) in widths.windows(2).enumerate() {
            layers.push(Linear::new(pair[0], pair[1], true, vb.pp(format!("fc{}", i + 1)))?);
        }
        let last = widths.last().copied().unwrap_or(cfg.inputs);
        layers.push(Linear::new(last, cfg.classes, true, vb.pp(format!("fc{}", widths.len())))?);
        Ok(Self { layers })
    }
}

/// Layer `i` is `fc{i + 1}`, as the forward pass names it.
impl ModuleTree for Mlp {
    fn visit_at<'a>(&'a self, path: &mut ModulePath, f: &mut dyn FnMut(&str, Entry<'a>)) {
        f(path.as_str(), Entry::Layer(LayerKind::Module("Mlp")));
        for (i, layer) in self.layers.iter().enumerate() {
            path.child(&format!("fc{}", i + 1), layer, f);
        }
    }

    fn visit_mut_at(&mut self, path: &mut ModulePath, f: &mut dyn FnMut(&str, EntryMut<'_>)) {
        f(path.as_str(), EntryMut::Layer(LayerKind::Module("Mlp"), Some(self)));
        for (i, layer) in self.layers.iter_mut().enumerate() {
            path.child_mut(&format!("fc{}", i + 1), layer, f);
        }
    }
}

impl Layered for Mlp {
    fn forward_tapped(&self, xs: &Tensor, _train: bool, tap: Tap<'_>) -> Result<Tensor> {
        let mut x = tapped(tap, "flatten", xs.apply(&Flatten)?);
        let n = self.layers.len();
        for (i, layer) in self.layers.iter().enumerate() {
            x = tapped(tap, &format!("fc{}", i + 1), x.apply(layer)?);
            if i + 1 < n {
                x = tapped(tap, &format!("relu{}", i + 1), x.apply(&Activation::Relu)?);
            }
        }
        Ok(x)
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_tapped(xs, false, &mut |_, _| {})
    }
}
