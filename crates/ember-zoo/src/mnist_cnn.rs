//! The classic MNIST CNN (the Keras/PyTorch tutorial network).

use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};
use ember_kernels::FusedActivation;
use ember_layers::{Conv2d, Conv2dConfig, Flatten, Linear, MaxPool2d, ModuleTree, WeightInit};

use crate::network::{tapped, Layered, Tap};

/// Conv2d(1→32, 3x3) → ReLU → MaxPool 2 → Conv2d(32→64, 3x3) → ReLU → MaxPool 2 → Flatten →
/// Linear(1600→128) → ReLU → Linear(128→classes). 225,034 parameters for 10 classes.
///
/// The network of the Keras "simple MNIST convnet" example and PyTorch's MNIST example (after
/// LeCun et al., "Gradient-based learning applied to document recognition", 1998).
///
/// Parameters: `conv1.{weight,bias}`, `conv2.*`, `fc1.*`, `fc2.*`, as the PyTorch module
/// `conv1 = nn.Conv2d(1, 32, 3)`, ... would name them. New parameters start as Keras's do
/// (Glorot-uniform weights, zero biases: [`WeightInit::Keras`]), like the Keras example whose
/// one-epoch accuracy the end-to-end benchmark compares against (`docs/performance.md`).
///
/// # Shapes
/// - input: `(b, 1, 28, 28)`
/// - output: `(b, classes)` logits
#[derive(Debug, Clone, ModuleTree)]
pub struct MnistCnn {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
    pool: MaxPool2d,
}

impl MnistCnn {
    /// Reads or creates the network's parameters under `vb`.
    pub fn new(classes: usize, vb: VarBuilder) -> Result<Self> {
        let init = WeightInit::Keras;
        let conv = |c_in, c_out| Conv2dConfig { init, ..Conv2dConfig::new(c_in, c_out, 3) };
        Ok(Self {
            conv1: Conv2d::new(&conv(1, 32), vb.pp("conv1"))?,
            conv2: Conv2d::new(&conv(32, 64), vb.pp("conv2"))?,
            fc1: Linear::with_init(64 * 5 * 5, 128, true, init, vb.pp("fc1"))?,
            fc2: Linear::with_init(128, classes, true, init, vb.pp("fc2"))?,
            pool: MaxPool2d::new(2, 2, 0),
        })
    }
}

impl Layered for MnistCnn {
    fn forward_tapped(&self, xs: &Tensor, train: bool, tap: Tap<'_>) -> Result<Tensor> {
        // conv -> ReLU -> max pool runs as one op per block (ember-kernels' fused kernel), so
        // the taps report each block's pooled output; fc1 carries its ReLU. In eval mode the
        // pools record no argmax (cheaper inference).
        let relu = FusedActivation::Relu;
        let x = tapped(tap, "conv1", self.conv1.forward_fused_t(xs, relu, Some(&self.pool), train)?);
        let x = tapped(tap, "conv2", self.conv2.forward_fused_t(&x, relu, Some(&self.pool), train)?);
        let x = tapped(tap, "flatten", x.apply(&Flatten)?);
        let x = tapped(tap, "fc1", self.fc1.forward_with_activation(&x, relu)?);
        Ok(tapped(tap, "fc2", x.apply(&self.fc2)?))
    }
}

impl Module for MnistCnn {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_tapped(xs, false, &mut |_, _| {})
    }
}
