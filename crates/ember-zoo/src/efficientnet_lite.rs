//! EfficientNet-Lite0..4 with the parameter names of the EfficientNet-Lite PyTorch checkpoints.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use ember_kernels::{Conv2dParams, FusedActivation};
use ember_layers::{
    BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Dropout, DropoutConfig, GlobalAvgPool2d, Linear, ModuleTree,
};

use crate::network::module_t_untapped;
use crate::network::{conv_bn, tapped, Layered, Tap};

/// One stage of the base network: kernel, stride, expand ratio, output channels, repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stage {
    kernel: usize,
    stride: usize,
    expand: usize,
    out: usize,
    repeats: usize,
}

/// EfficientNet-B0's stages (Tan and Le, table 1), shared by every Lite variant.
const STAGES: [Stage; 7] = [
    Stage { kernel: 3, stride: 1, expand: 1, out: 16, repeats: 1 },
    Stage { kernel: 3, stride: 2, expand: 6, out: 24, repeats: 2 },
    Stage { kernel: 5, stride: 2, expand: 6, out: 40, repeats: 2 },
    Stage { kernel: 3, stride: 2, expand: 6, out: 80, repeats: 3 },
    Stage { kernel: 5, stride: 1, expand: 6, out: 112, repeats: 3 },
    Stage { kernel: 5, stride: 2, expand: 6, out: 192, repeats: 4 },
    Stage { kernel: 3, stride: 1, expand: 6, out: 320, repeats: 1 },
];

/// Stem and head widths, fixed for every Lite variant.
const STEM: usize = 32;
const HEAD: usize = 1280;

/// Configuration for [`EfficientNetLite`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EfficientNetLiteConfig {
    /// Channel multiplier.
    pub width: f64,
    /// Block-count multiplier (not applied to the first and last stage).
    pub depth: f64,
    /// Input resolution the variant was designed for.
    pub resolution: usize,
    /// Drop probability before the classifier.
    pub dropout: f64,
    /// Input channels (3 for RGB).
    pub in_channels: usize,
    /// Output classes.
    pub classes: usize,
    /// Seed of the dropout mask.
    pub seed: u64,
}

impl EfficientNetLiteConfig {
    /// EfficientNet-Lite`variant` (0..=4) with the reference multipliers (width, depth,
    /// resolution, dropout): Lite0 (1.0, 1.0, 224, 0.2), Lite1 (1.0, 1.1, 240, 0.2), Lite2
    /// (1.1, 1.2, 260, 0.3), Lite3 (1.2, 1.4, 280, 0.3), Lite4 (1.4, 1.8, 300, 0.3); `None`
    /// for another variant.
    pub fn lite(variant: usize, in_channels: usize, classes: usize) -> Option<Self> {
        let (width, depth, resolution, dropout) = match variant {
            0 => (1.0, 1.0, 224, 0.2),
            1 => (1.0, 1.1, 240, 0.2),
            2 => (1.1, 1.2, 260, 0.3),
            3 => (1.2, 1.4, 280, 0.3),
            4 => (1.4, 1.8, 300, 0.3),
            _ => return None,
        };
        Some(Self { width, depth, resolution, dropout, in_channels, classes, seed: 0 })
    }

    /// `filters * width` rounded to a multiple of 8, never more than 10 % below (TF's
    /// `round_filters`).
    fn round_filters(&self, filters: usize) -> usize {
        let scaled = filters as f64 * self.width;
        let rounded = (((scaled + 4.0) as usize) / 8 * 8).max(8);
        if (rounded as f64) < 0.9 * scaled {
            rounded + 8
        } else {
            rounded
        }
    }

    fn round_repeats(&self, stage: usize) -> usize {
        // Lite fixes the stem and head, including the first and last stage's block count.
        if stage == 0 || stage == STAGES.len() - 1 {
            STAGES[stage].repeats
        } else {
            (STAGES[stage].repeats as f64 * self.depth).ceil() as usize
        }
    }
}

/// A convolution without bias padded as TensorFlow's `"same"` (`Conv2dConfig::same_padding`):
/// the output has `ceil(i / s)` rows; the total padding `max((ceil(i/s) - 1) s + k - i, 0)` is
/// split with the smaller half before (top/left), as the Lite checkpoints were trained. The
/// depthwise kernel reads the padding in place, so no padded copy of the input is made.
fn same_conv(c_in: usize, c_out: usize, kernel: usize, stride: usize, groups: usize, vb: VarBuilder) -> Result<Conv2d> {
    let mut cfg = Conv2dConfig::new(c_in, c_out, kernel);
    cfg.params = Conv2dParams { stride, groups, ..Conv2dParams::default() };
    cfg.bias = false;
    cfg.same_padding = true;
    Conv2d::new(&cfg, vb)
}

fn bn(c: usize, vb: VarBuilder) -> Result<BatchNorm> {
    // TensorFlow's batch norm: eps 1e-3, decay 0.99 (PyTorch momentum 0.01).
    BatchNorm::new(&BatchNormConfig { eps: 1e-3, momentum: 0.01, ..BatchNormConfig::new(c) }, vb)
}

/// Mobile inverted bottleneck (MBConv) without squeeze-excitation.
#[derive(Debug, Clone, ModuleTree)]
struct MbConv {
    /// Absent when the stage does not expand (ratio 1).
    #[module(rename = "_expand_conv")]
    expand_conv: Option<Conv2d>,
    #[module(rename = "_bn0")]
    bn0: Option<BatchNorm>,
    #[module(rename = "_depthwise_conv")]
    depthwise_conv: Conv2d,
    #[module(rename = "_bn1")]
    bn1: BatchNorm,
    #[module(rename = "_project_conv")]
    project_conv: Conv2d,
    #[module(rename = "_bn2")]
    bn2: BatchNorm,
    #[module(skip)]
    /// The names the block reports its layers under, built once so a forward pass formats no
    /// strings.
    taps: [String; 7],
    #[module(skip)]
    skip: bool,
}

impl MbConv {
    fn new(c_in: usize, c_out: usize, stage: &Stage, stride: usize, vb: VarBuilder) -> Result<Self> {
        let mid = c_in * stage.expand;
        let (expand_conv, bn0) = if stage.expand != 1 {
            (Some(same_conv(c_in, mid, 1, 1, 1, vb.pp("_expand_conv"))?), Some(bn(mid, vb.pp("_bn0"))?))
        } else {
            (None, None)
        };
        Ok(Self {
            expand_conv,
            bn0,
            depthwise_conv: same_conv(mid, mid, stage.kernel, stride, mid, vb.pp("_depthwise_conv"))?,
            bn1: bn(mid, vb.pp("_bn1"))?,
            project_conv: same_conv(mid, c_out, 1, 1, 1, vb.pp("_project_conv"))?,
            bn2: bn(c_out, vb.pp("_bn2"))?,
            taps: ["_expand_conv", "_bn0", "_depthwise_conv", "_bn1", "_project_conv", "_bn2", " (add)"].map(|layer| {
                let n = vb.prefix();
                if layer.starts_with(' ') {
                    format!("{n}{layer}")
                } else {
                    format!("{n}.{layer}")
                }
            }),
            skip: stride == 1 && c_in == c_out,
        })
    }

    fn forward(&self, xs: &Tensor, train: bool, tap: Tap<'_>) -> Result<Tensor> {
        let [expand_conv, bn0, depthwise_conv, bn1, project_conv, bn2, add] = &self.taps;
        // Batch norm and ReLU6 run as one op (one pass forward and backward, no stored
        // pre-activation).
        let relu6 = FusedActivation::Relu6;
        let mut x = xs.clone();
        if let (Some(conv), Some(bn)) = (&self.expand_conv, &self.bn0) {
            x = conv_bn(conv, bn, &x, relu6, train, &[expand_conv, bn0], tap)?;
        }
        x = conv_bn(&self.depthwise_conv, &self.bn1, &x, relu6, train, &[depthwise_conv, bn1], tap)?;
        let identity = FusedActivation::Identity;
        if !self.skip {
            return conv_bn(&self.project_conv, &self.bn2, &x, identity, train, &[project_conv, bn2], tap);
        }
        // The skip connection: with batch statistics (training) the projection's batch norm and
        // the sum are one op, which reports its output under the batch norm's name too; with
        // running statistics the batch norm folds into the projection and the sum is one pass.
        let out = if self.bn2.uses_running_statistics(train) {
            let x = conv_bn(&self.project_conv, &self.bn2, &x, identity, train, &[project_conv, bn2], tap)?;
            ember_kernels::add_activate(&x, xs, identity)?
        } else {
            let x = tapped(tap, project_conv, x.apply(&self.project_conv)?);
            let out = self.bn2.forward_t_with_residual(&x, xs, train, identity)?;
            tap(bn2, &out);
            out
        };
        Ok(tapped(tap, add, out))
    }
}

/// EfficientNet-Lite: EfficientNet (Tan and Le, "EfficientNet: Rethinking model scaling for
/// convolutional neural networks", ICML 2019) as adapted for mobile accelerators in the
/// TensorFlow "EfficientNet-Lite" release (2020): no squeeze-excitation, ReLU6 instead of swish,
/// stem (32 channels) and head (1280 channels) fixed while scaling up, and the first and last
/// stage's block counts fixed too. Batch norm eps 1e-3; TensorFlow "same" padding.
///
/// Parameter names are those of the EfficientNet-Lite PyTorch checkpoints (lukemelas-style
/// `EfficientNet`): `_conv_stem.weight`, `_bn0.*`, `_blocks.{i}._expand_conv.weight` (absent in
/// block 0), `_blocks.{i}._bn0.*`, `_blocks.{i}._depthwise_conv.weight`, `_blocks.{i}._bn1.*`,
/// `_blocks.{i}._project_conv.weight`, `_blocks.{i}._bn2.*`, `_conv_head.weight`, `_bn1.*`,
/// `_fc.{weight,bias}`. Lite0 has 4,652,008 parameters for 3 channels and 1000 classes.
/// Drop-connect (stochastic depth) of the reference training recipe is not implemented.
///
/// # Shapes
/// - input: `(b, in_channels, h, w)`, any size (the reference resolution is
///   [`EfficientNetLiteConfig::resolution`]; 28x28 works and ends at 1x1)
/// - output: `(b, classes)` logits
#[derive(Debug, Clone, ModuleTree)]
pub struct EfficientNetLite {
    #[module(rename = "_conv_stem")]
    conv_stem: Conv2d,
    #[module(rename = "_bn0")]
    bn0: BatchNorm,
    #[module(rename = "_blocks")]
    blocks: Vec<MbConv>,
    #[module(rename = "_conv_head")]
    conv_head: Conv2d,
    #[module(rename = "_bn1")]
    bn1: BatchNorm,
    #[module(rename = "_dropout")]
    dropout: Dropout,
    #[module(rename = "_fc")]
    fc: Linear,
}

impl EfficientNetLite {
    /// Reads or creates the parameters under `vb`.
    pub fn new(cfg: &EfficientNetLiteConfig, vb: VarBuilder) -> Result<Self> {
        let conv_stem = same_conv(cfg.in_channels, STEM, 3, 2, 1, vb.pp("_conv_stem"))?;
        let bn0 = bn(STEM, vb.pp("_bn0"))?;
        let mut blocks = Vec::new();
        let mut c_in = STEM;
        for (s, stage) in STAGES.iter().enumerate() {
            let c_out = cfg.round_filters(stage.out);
            for r in 0..cfg.round_repeats(s) {
                let stride = if r == 0 { stage.stride } else { 1 };
                blocks.push(MbConv::new(c_in, c_out, stage, stride, vb.pp(format!("_blocks.{}", blocks.len())))?);
                c_in = c_out;
            }
        }
        let conv_head = same_conv(c_in, HEAD, 1, 1, 1, vb.pp("_conv_head"))?;
        let bn1 = bn(HEAD, vb.pp("_bn1"))?;
        Ok(Self {
            conv_stem,
            bn0,
            blocks,
            conv_head,
            bn1,
            dropout: Dropout::new(&DropoutConfig { p: cfg.dropout, seed: cfg.seed })?,
            fc: Linear::new(HEAD, cfg.classes, true, vb.pp("_fc"))?,
        })
    }

    /// Number of MBConv blocks (16 for Lite0).
    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }
}

impl Layered for EfficientNetLite {
    fn forward_tapped(&self, xs: &Tensor, train: bool, tap: Tap<'_>) -> Result<Tensor> {
        // Batch norm and ReLU6 run as one op (one pass forward and backward, no stored
        // pre-activation); on running statistics, the convolution joins them (`conv_bn`).
        let relu6 = FusedActivation::Relu6;
        let mut x = conv_bn(&self.conv_stem, &self.bn0, xs, relu6, train, &["_conv_stem", "_bn0"], tap)?;
        for block in &self.blocks {
            x = block.forward(&x, train, tap)?;
        }
        x = conv_bn(&self.conv_head, &self.bn1, &x, relu6, train, &["_conv_head", "_bn1"], tap)?;
        x = tapped(tap, "_avg_pooling", x.apply(&GlobalAvgPool2d)?);
        x = tapped(tap, "_dropout", x.apply_t(&self.dropout, train)?);
        Ok(tapped(tap, "_fc", x.apply(&self.fc)?))
    }
}

module_t_untapped!(EfficientNetLite);
