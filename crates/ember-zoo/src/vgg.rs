//! A small VGG-style CNN with batch norm and dropout.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use ember_kernels::Conv2dParams;
use ember_layers::{
    Activation, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Dropout, DropoutConfig, Entry, EntryMut,
    GlobalAvgPool2d, LayerKind, Linear, MaxPool2d, ModulePath, ModuleTree,
};

use crate::network::module_t_untapped;
use crate::network::{tapped, Layered, Tap};

/// Configuration for [`VggSmall`].
#[derive(Debug, Clone, PartialEq)]
pub struct VggSmallConfig {
    /// Input channels (1 for MNIST-family images, 3 for CIFAR).
    pub in_channels: usize,
    /// Output classes.
    pub classes: usize,
    /// Output channels of each block (two 3x3 convolutions per block, then 2x2 max-pooling).
    pub widths: Vec<usize>,
    /// Width of the hidden dense layer.
    pub hidden: usize,
    /// Drop probability after every block.
    pub block_dropout: f64,
    /// Drop probability before the output layer.
    pub head_dropout: f64,
    /// Seed of the dropout masks.
    pub seed: u64,
    /// Batch norm after every convolution; without it the convolutions get biases (the
    /// regularisation chapter's "without BN" network).
    pub batch_norm: bool,
}

impl VggSmallConfig {
    /// Three blocks of 32, 64 and 128 channels, a 256-wide dense layer, dropout 0.25 / 0.5.
    pub fn new(in_channels: usize, classes: usize) -> Self {
        Self {
            in_channels,
            classes,
            widths: vec![32, 64, 128],
            hidden: 256,
            block_dropout: 0.25,
            head_dropout: 0.5,
            seed: 0,
            batch_norm: true,
        }
    }
}

#[derive(Debug, Clone)]
struct ConvBnRelu {
    conv: Conv2d,
    /// `None` when built without batch norm.
    bn: Option<BatchNorm>,
}

impl ConvBnRelu {
    fn new(c_in: usize, c_out: usize, batch_norm: bool, conv: VarBuilder, bn: VarBuilder) -> Result<Self> {
        let mut cfg = Conv2dConfig::new(c_in, c_out, 3);
        cfg.params = Conv2dParams { padding: 1, ..Conv2dParams::default() };
        // A bias before batch norm is cancelled by its mean subtraction; without BN it is needed.
        cfg.bias = !batch_norm;
        let bn = if batch_norm { Some(BatchNorm::new(&BatchNormConfig::new(c_out), bn)?) } else { None };
        Ok(Self { conv: Conv2d::new(&cfg, conv)?, bn })
    }

    fn norm(&self, x: Tensor, train: bool) -> Result<Tensor> {
        match &self.bn {
            Some(bn) => x.apply_t(bn, train),
            None => Ok(x),
        }
    }
}

/// A VGG-style network after Simonyan and Zisserman, "Very deep convolutional networks for
/// large-scale image recognition" (ICLR 2015), sized for 28x28 / 32x32 images, with batch norm
/// (Ioffe and Szegedy, 2015) and dropout (Srivastava et al., 2014): per block
/// `(conv 3x3 → BN → ReLU) x 2 → max-pool 2 → dropout`, then global average pooling, a dense
/// layer, dropout and the output layer. Global pooling makes it accept any input size of at
/// least `2^blocks` pixels.
///
/// Parameters, as an `nn.Sequential` named `features` and one named `classifier`:
/// `features.{i}` for every conv (weight) / batch norm (weight, bias, running stats) /
/// ReLU / pool / dropout index, `classifier.0.*` and `classifier.3.*` for the dense layers.
///
/// # Shapes
/// - input: `(b, in_channels, h, w)`
/// - output: `(b, classes)` logits
#[derive(Debug, Clone)]
pub struct VggSmall {
    blocks: Vec<(ConvBnRelu, ConvBnRelu)>,
    block_dropout: Dropout,
    fc1: Linear,
    head_dropout: Dropout,
    fc2: Linear,
}

impl VggSmall {
    /// Reads or creates the parameters under `vb`.
    pub fn new(cfg: &VggSmallConfig, vb: VarBuilder) -> Result<Self> {
        let features = vb.pp("features");
        let mut blocks = Vec::new();
        let (mut c_in, mut index) = (cfg.in_channels, 0);
        for &c_out in &cfg.widths {
            // conv, bn, relu, conv, bn, relu, pool, dropout: 8 indices per block.
            let bn = cfg.batch_norm;
            let first = ConvBnRelu::new(c_in, c_out, bn, features.pp(index), features.pp(index + 1))?;
            let second = ConvBnRelu::new(c_out, c_out, bn, features.pp(index + 3), features.pp(index + 4))?;
            blocks.push((first, second));
            c_in = c_out;
            index += 8;
        }
        let classifier = vb.pp("classifier");
        Ok(Self {
            blocks,
            block_dropout: Dropout::new(&DropoutConfig { p: cfg.block_dropout, seed: cfg.seed })?,
            fc1: Linear::new(c_in, cfg.hidden, true, classifier.pp(0))?,
            head_dropout: Dropout::new(&DropoutConfig { p: cfg.head_dropout, seed: cfg.seed.wrapping_add(1) })?,
            fc2: Linear::new(cfg.hidden, cfg.classes, true, classifier.pp(3))?,
        })
    }
}

/// torchvision's VGG layout: block `b`'s convolutions and batch norms are `features.{8b}`,
/// `features.{8b + 1}`, `features.{8b + 3}`, `features.{8b + 4}` (ReLU, pooling and dropout
/// take the other indices but hold nothing; built without batch norm, its indices hold nothing
/// too); the head is `classifier.0` and `classifier.3`.
impl ModuleTree for VggSmall {
    fn visit_at<'a>(&'a self, path: &mut ModulePath, f: &mut dyn FnMut(&str, Entry<'a>)) {
        f(path.as_str(), Entry::Layer(LayerKind::Module("VggSmall")));
        path.push("features");
        for (b, (first, second)) in self.blocks.iter().enumerate() {
            path.child(&(8 * b).to_string(), &first.conv, f);
            if let Some(bn) = &first.bn {
                path.child(&(8 * b + 1).to_string(), bn, f);
            }
            path.child(&(8 * b + 3).to_string(), &second.conv, f);
            if let Some(bn) = &second.bn {
                path.child(&(8 * b + 4).to_string(), bn, f);
            }
        }
        path.pop();
        path.push("classifier");
        path.child("0", &self.fc1, f);
        path.child("3", &self.fc2, f);
        path.pop();
    }

    fn visit_mut_at(&mut self, path: &mut ModulePath, f: &mut dyn FnMut(&str, EntryMut<'_>)) {
        f(path.as_str(), EntryMut::Layer(LayerKind::Module("VggSmall"), Some(self)));
        path.push("features");
        for (b, (first, second)) in self.blocks.iter_mut().enumerate() {
            path.child_mut(&(8 * b).to_string(), &mut first.conv, f);
            if let Some(bn) = &mut first.bn {
                path.child_mut(&(8 * b + 1).to_string(), bn, f);
            }
            path.child_mut(&(8 * b + 3).to_string(), &mut second.conv, f);
            if let Some(bn) = &mut second.bn {
                path.child_mut(&(8 * b + 4).to_string(), bn, f);
            }
        }
        path.pop();
        path.push("classifier");
        path.child_mut("0", &mut self.fc1, f);
        path.child_mut("3", &mut self.fc2, f);
        path.pop();
    }
}

impl Layered for VggSmall {
    fn forward_tapped(&self, xs: &Tensor, train: bool, tap: Tap<'_>) -> Result<Tensor> {
        let relu = Activation::Relu;
        let pool = MaxPool2d::new(2, 2, 0);
        let mut x = xs.clone();
        for (b, (first, second)) in self.blocks.iter().enumerate() {
            let i = b * 8;
            x = tapped(tap, &format!("features.{i}"), x.apply(&first.conv)?);
            x = tapped(tap, &format!("features.{}", i + 1), first.norm(x, train)?);
            x = tapped(tap, &format!("features.{}", i + 2), x.apply(&relu)?);
            x = tapped(tap, &format!("features.{}", i + 3), x.apply(&second.conv)?);
            x = tapped(tap, &format!("features.{}", i + 4), second.norm(x, train)?);
            x = tapped(tap, &format!("features.{}", i + 5), x.apply(&relu)?);
            x = tapped(tap, &format!("features.{}", i + 6), x.apply(&pool)?);
            x = tapped(tap, &format!("features.{}", i + 7), x.apply_t(&self.block_dropout, train)?);
        }
        x = tapped(tap, "avgpool", x.apply(&GlobalAvgPool2d)?);
        x = tapped(tap, "classifier.0", x.apply(&self.fc1)?);
        x = tapped(tap, "classifier.1", x.apply(&relu)?);
        x = tapped(tap, "classifier.2", x.apply_t(&self.head_dropout, train)?);
        Ok(tapped(tap, "classifier.3", x.apply(&self.fc2)?))
    }
}

module_t_untapped!(VggSmall);
