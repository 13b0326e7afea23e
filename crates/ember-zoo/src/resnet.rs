//! ResNet-18/34/50 with torchvision's parameter names.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use ember_kernels::{Conv2dParams, FusedActivation};
use ember_layers::{
    BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Flatten, GlobalAvgPool2d, Linear, MaxPool2d, ModuleTree,
};

use crate::network::module_t_untapped;
use crate::network::{conv_bn, tapped, Layered, Tap};

/// The first layers of a [`ResNet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stem {
    /// ImageNet: conv 7x7 stride 2 → BN → ReLU → max-pool 3x3 stride 2 (input / 4).
    ImageNet,
    /// CIFAR (He et al., section 4.2): conv 3x3 stride 1 → BN → ReLU, no pooling, for 28x28 or
    /// 32x32 images. `conv1.weight` is `(64, c, 3, 3)` instead of `(64, c, 7, 7)`.
    Cifar,
}

/// The residual block of a [`ResNet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3x3 convolutions (ResNet-18/34), expansion 1.
    Basic,
    /// 1x1 → 3x3 (strided) → 1x1 convolutions (ResNet-50 and deeper, torchvision's "v1.5"),
    /// expansion 4.
    Bottleneck,
}

impl BlockKind {
    fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// Configuration for [`ResNet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResNetConfig {
    /// Block type.
    pub block: BlockKind,
    /// Blocks in `layer1` .. `layer4`.
    pub layers: [usize; 4],
    /// Input channels (3 for RGB).
    pub in_channels: usize,
    /// Output classes.
    pub classes: usize,
    /// First layers.
    pub stem: Stem,
}

impl ResNetConfig {
    /// ResNet-18: basic blocks `[2, 2, 2, 2]`, 11,689,512 parameters for 3 channels and 1000 classes.
    pub fn resnet18(in_channels: usize, classes: usize, stem: Stem) -> Self {
        Self { block: BlockKind::Basic, layers: [2, 2, 2, 2], in_channels, classes, stem }
    }

    /// ResNet-34: basic blocks `[3, 4, 6, 3]`, 21,797,672 parameters (3 channels, 1000 classes).
    pub fn resnet34(in_channels: usize, classes: usize, stem: Stem) -> Self {
        Self { block: BlockKind::Basic, layers: [3, 4, 6, 3], in_channels, classes, stem }
    }

    /// ResNet-50: bottleneck blocks `[3, 4, 6, 3]`, 25,557,032 parameters (3 channels, 1000 classes).
    pub fn resnet50(in_channels: usize, classes: usize, stem: Stem) -> Self {
        Self { block: BlockKind::Bottleneck, layers: [3, 4, 6, 3], in_channels, classes, stem }
    }
}

fn conv(c_in: usize, c_out: usize, kernel: usize, stride: usize, padding: usize, vb: VarBuilder) -> Result<Conv2d> {
    let mut cfg = Conv2dConfig::new(c_in, c_out, kernel);
    cfg.params = Conv2dParams { padding, stride, ..Conv2dParams::default() };
    cfg.bias = false;
    Conv2d::new(&cfg, vb)
}

fn bn(c: usize, vb: VarBuilder) -> Result<BatchNorm> {
    BatchNorm::new(&BatchNormConfig::new(c), vb)
}

/// The projection shortcut of a [`Block`], torchvision's `downsample` `nn.Sequential`.
#[derive(Debug, Clone, ModuleTree)]
struct Downsample {
    #[module(rename = "0")]
    conv: Conv2d,
    #[module(rename = "1")]
    bn: BatchNorm,
}

/// One residual block, field for field torchvision's `BasicBlock` (`conv1, bn1, conv2, bn2`)
/// or `Bottleneck` (also `conv3, bn3`), with the optional projection shortcut.
#[derive(Debug, Clone, ModuleTree)]
struct Block {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    /// Bottleneck blocks only.
    conv3: Option<Conv2d>,
    /// Bottleneck blocks only.
    bn3: Option<BatchNorm>,
    downsample: Option<Downsample>,
    #[module(skip)]
    taps: BlockTaps,
}

/// The names a block reports its layers' outputs under, built once with the block so a forward
/// pass formats no strings.
#[derive(Debug, Clone)]
struct BlockTaps {
    /// `(convN, bnN, reluN)` for each convolution.
    convs: Vec<(String, String, String)>,
    /// `downsample.0`, `downsample.1`.
    downsample: (String, String),
    /// The residual sum and its ReLU.
    out: String,
}

impl BlockTaps {
    fn new(name: &str, convs: usize) -> Self {
        Self {
            convs: (1..=convs)
                .map(|i| (format!("{name}.conv{i}"), format!("{name}.bn{i}"), format!("{name}.relu{i}")))
                .collect(),
            downsample: (format!("{name}.downsample.0"), format!("{name}.downsample.1")),
            out: format!("{name} (add, relu)"),
        }
    }
}

impl Block {
    fn new(kind: BlockKind, c_in: usize, planes: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let c_out = planes * kind.expansion();
        let (conv1, bn1, conv2, bn2, conv3, bn3) = match kind {
            BlockKind::Basic => (
                conv(c_in, planes, 3, stride, 1, vb.pp("conv1"))?,
                bn(planes, vb.pp("bn1"))?,
                conv(planes, planes, 3, 1, 1, vb.pp("conv2"))?,
                bn(planes, vb.pp("bn2"))?,
                None,
                None,
            ),
            BlockKind::Bottleneck => (
                conv(c_in, planes, 1, 1, 0, vb.pp("conv1"))?,
                bn(planes, vb.pp("bn1"))?,
                conv(planes, planes, 3, stride, 1, vb.pp("conv2"))?,
                bn(planes, vb.pp("bn2"))?,
                Some(conv(planes, c_out, 1, 1, 0, vb.pp("conv3"))?),
                Some(bn(c_out, vb.pp("bn3"))?),
            ),
        };
        let downsample = if stride != 1 || c_in != c_out {
            let ds = vb.pp("downsample");
            Some(Downsample { conv: conv(c_in, c_out, 1, stride, 0, ds.pp(0))?, bn: bn(c_out, ds.pp(1))? })
        } else {
            None
        };
        let name = vb.prefix();
        let taps = BlockTaps::new(&name, if conv3.is_some() { 3 } else { 2 });
        Ok(Self { conv1, bn1, conv2, bn2, conv3, bn3, downsample, taps })
    }

    /// The `(convN, bnN)` pairs in order.
    fn convs(&self) -> Vec<(&Conv2d, &BatchNorm)> {
        let mut convs = vec![(&self.conv1, &self.bn1), (&self.conv2, &self.bn2)];
        if let (Some(c), Some(b)) = (&self.conv3, &self.bn3) {
            convs.push((c, b));
        }
        convs
    }

    fn forward(&self, xs: &Tensor, train: bool, tap: Tap<'_>) -> Result<Tensor> {
        let mut x = xs.clone();
        let mut convs = self.convs();
        let Some((last_conv, last_bn)) = convs.pop() else { candle_core::bail!("residual block without convolutions") };
        // Each batch norm runs as one op with its ReLU, or folds into its convolution where it
        // uses running statistics (`conv_bn`).
        for ((c, b), (conv, bn, relu)) in convs.into_iter().zip(&self.taps.convs) {
            x = conv_bn(c, b, &x, FusedActivation::Relu, train, &[conv, bn, relu], tap)?;
        }
        let Some((conv, bn, _)) = self.taps.convs.last() else { candle_core::bail!("residual block without taps") };
        // With running statistics the last batch norm folds into its convolution and the sum
        // and its ReLU are one op after it; with batch statistics (training) the batch norm, the
        // sum and the ReLU are one op, which reports its output under the batch norm's name too
        // (after the shortcut's layers: in training the taps come in that order).
        let folded = last_bn.uses_running_statistics(train);
        let x = if folded {
            conv_bn(last_conv, last_bn, &x, FusedActivation::Identity, train, &[conv, bn], tap)?
        } else {
            tapped(tap, conv, x.apply(last_conv)?)
        };
        let shortcut = match &self.downsample {
            Some(Downsample { conv, bn }) => {
                let names = [self.taps.downsample.0.as_str(), self.taps.downsample.1.as_str()];
                conv_bn(conv, bn, xs, FusedActivation::Identity, train, &names, tap)?
            }
            None => xs.clone(),
        };
        let out = if folded {
            ember_kernels::add_activate(&x, &shortcut, FusedActivation::Relu)?
        } else {
            let out = last_bn.forward_t_with_residual(&x, &shortcut, train, FusedActivation::Relu)?;
            tap(bn, &out);
            out
        };
        Ok(tapped(tap, &self.taps.out, out))
    }
}

/// A residual network from He, Zhang, Ren and Sun, "Deep residual learning for image
/// recognition" (CVPR 2016), laid out as torchvision's `resnet18`/`resnet34`/`resnet50`, so
/// the `state_dict` keys are identical: `conv1.weight`, `bn1.{weight,bias,running_mean,
/// running_var}`, `layer1.0.conv1.weight`, `layer2.0.downsample.0.weight`,
/// `layer2.0.downsample.1.*`, `fc.{weight,bias}`. Bottleneck blocks put the stride on the 3x3
/// convolution ("ResNet v1.5"), as torchvision does.
///
/// Batch norm uses batch statistics and updates its running statistics under
/// `forward_t(x, true)`, and uses the running statistics under `forward_t(x, false)`.
///
/// # Shapes
/// - input: `(b, in_channels, h, w)`; any size that survives the downsampling (ImageNet stem:
///   32x32 and up; CIFAR stem: 8x8 and up)
/// - output: `(b, classes)` logits
#[derive(Debug, Clone, ModuleTree)]
pub struct ResNet {
    #[module(skip)]
    cfg: ResNetConfig,
    conv1: Conv2d,
    bn1: BatchNorm,
    layer1: Vec<Block>,
    layer2: Vec<Block>,
    layer3: Vec<Block>,
    layer4: Vec<Block>,
    fc: Linear,
}

impl ResNet {
    /// Reads or creates the parameters under `vb`.
    pub fn new(cfg: &ResNetConfig, vb: VarBuilder) -> Result<Self> {
        let conv1 = match cfg.stem {
            Stem::ImageNet => conv(cfg.in_channels, 64, 7, 2, 3, vb.pp("conv1"))?,
            Stem::Cifar => conv(cfg.in_channels, 64, 3, 1, 1, vb.pp("conv1"))?,
        };
        let bn1 = bn(64, vb.pp("bn1"))?;
        let mut stages: [Vec<Block>; 4] = Default::default();
        let mut c_in = 64;
        for (stage, (&count, blocks)) in cfg.layers.iter().zip(&mut stages).enumerate() {
            let planes = 64 << stage;
            let layer = vb.pp(format!("layer{}", stage + 1));
            for i in 0..count {
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                blocks.push(Block::new(cfg.block, c_in, planes, stride, layer.pp(i))?);
                c_in = planes * cfg.block.expansion();
            }
        }
        let fc = Linear::new(c_in, cfg.classes, true, vb.pp("fc"))?;
        let [layer1, layer2, layer3, layer4] = stages;
        Ok(Self { cfg: *cfg, conv1, bn1, layer1, layer2, layer3, layer4, fc })
    }

    /// Every residual block, `layer1.0` to the last of `layer4`.
    fn blocks(&self) -> impl Iterator<Item = &Block> {
        [&self.layer1, &self.layer2, &self.layer3, &self.layer4].into_iter().flatten()
    }

    /// The network's configuration.
    pub fn config(&self) -> &ResNetConfig {
        &self.cfg
    }
}

impl Layered for ResNet {
    fn forward_tapped(&self, xs: &Tensor, train: bool, tap: Tap<'_>) -> Result<Tensor> {
        let pool = MaxPool2d::new(3, 2, 1);
        // Training with batch statistics: the stem's batch norm, ReLU and pool as one op, which
        // reports its (pooled) output under each name, as a folded batch norm reports its
        // convolution's.
        let fused_pool = self.cfg.stem == Stem::ImageNet && !self.bn1.uses_running_statistics(train);
        let mut x = if fused_pool {
            let y = tapped(tap, "conv1", xs.apply(&self.conv1)?);
            let y = self.bn1.forward_t_with_activation_and_pool(&y, train, FusedActivation::Relu, &pool)?;
            for name in ["bn1", "relu"] {
                tap(name, &y);
            }
            y
        } else {
            conv_bn(&self.conv1, &self.bn1, xs, FusedActivation::Relu, train, &["conv1", "bn1", "relu"], tap)?
        };
        if self.cfg.stem == Stem::ImageNet {
            if !fused_pool {
                x = x.apply(&pool)?;
            }
            x = tapped(tap, "maxpool", x);
        }
        for block in self.blocks() {
            x = block.forward(&x, train, tap)?;
        }
        x = tapped(tap, "avgpool", x.apply(&GlobalAvgPool2d)?);
        x = tapped(tap, "flatten", x.apply(&Flatten)?);
        Ok(tapped(tap, "fc", x.apply(&self.fc)?))
    }
}

module_t_untapped!(ResNet);
