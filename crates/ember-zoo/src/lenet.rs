//! LeNet-5.

use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};
use ember_kernels::Conv2dParams;
use ember_layers::{Activation, AvgPool2d, Conv2d, Conv2dConfig, Flatten, Linear, ModuleTree};

use crate::network::{tapped, Layered, Tap};

/// LeNet-5 from LeCun, Bottou, Bengio and Haffner, "Gradient-based learning applied to document
/// recognition" (Proc. IEEE, 1998): C1 conv 5x5 → 6, S2 average pool 2, C3 conv 5x5 → 16, S4
/// average pool 2, C5 dense 120, F6 dense 84, output; tanh non-linearities.
///
/// The paper feeds 32x32 images; for 28x28 MNIST digits C1 pads by 2 (as most PyTorch
/// versions do), so both sizes reach C5 as `16 x 5 x 5`. 61,706 parameters for 1x28x28 and
/// 10 classes. Full C3 connectivity and a linear output replace the paper's partial connection
/// table and RBF units.
///
/// Parameters: `conv1.*`, `conv2.*`, `fc1.*`, `fc2.*`, `fc3.*`.
///
/// # Shapes
/// - input: `(b, c, 28, 28)` or `(b, c, 32, 32)`
/// - output: `(b, classes)` logits
#[derive(Debug, Clone, ModuleTree)]
pub struct LeNet5 {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
}

impl LeNet5 {
    /// Reads or creates the parameters under `vb` for `in_channels x size x size` inputs
    /// (`size` 28 pads C1 by 2; 32 does not).
    pub fn new(in_channels: usize, size: usize, classes: usize, vb: VarBuilder) -> Result<Self> {
        let padding = match size {
            28 => 2,
            32 => 0,
            _ => candle_core::bail!("lenet5: input size must be 28 or 32, got {size}"),
        };
        let mut c1 = Conv2dConfig::new(in_channels, 6, 5);
        c1.params = Conv2dParams { padding, ..Conv2dParams::default() };
        Ok(Self {
            conv1: Conv2d::new(&c1, vb.pp("conv1"))?,
            conv2: Conv2d::new(&Conv2dConfig::new(6, 16, 5), vb.pp("conv2"))?,
            fc1: Linear::new(16 * 5 * 5, 120, true, vb.pp("fc1"))?,
            fc2: Linear::new(120, 84, true, vb.pp("fc2"))?,
            fc3: Linear::new(84, classes, true, vb.pp("fc3"))?,
        })
    }
}

impl Layered for LeNet5 {
    fn forward_tapped(&self, xs: &Tensor, _train: bool, tap: Tap<'_>) -> Result<Tensor> {
        let tanh = Activation::Tanh;
        let pool = AvgPool2d::new(2, 2, 0);
        let x = tapped(tap, "conv1", xs.apply(&self.conv1)?.apply(&tanh)?);
        let x = tapped(tap, "pool1", x.apply(&pool)?);
        let x = tapped(tap, "conv2", x.apply(&self.conv2)?.apply(&tanh)?);
        let x = tapped(tap, "pool2", x.apply(&pool)?);
        let x = tapped(tap, "flatten", x.apply(&Flatten)?);
        let x = tapped(tap, "fc1", x.apply(&self.fc1)?.apply(&tanh)?);
        let x = tapped(tap, "fc2", x.apply(&self.fc2)?.apply(&tanh)?);
        Ok(tapped(tap, "fc3", x.apply(&self.fc3)?))
    }
}

impl Module for LeNet5 {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_tapped(xs, false, &mut |_, _| {})
    }
}
