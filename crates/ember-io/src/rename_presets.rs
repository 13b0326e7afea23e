//! Built-in renaming presets: the rules that map another library's state-dict keys onto ember's.

use crate::rename::RenameRule;
use crate::{Error, Result};

/// The presets [`RenameRule::preset`] knows, with what each maps.
pub const RENAME_PRESETS: [(&str, &str); 1] =
    [("timm", "timm's tf_efficientnet_lite0..4 keys onto ember's efficientnet-lite0..4 names")];

/// timm's `tf_efficientnet_lite{0..4}` (`conv_stem`, `bn1`, `blocks.{stage}.{block}.*`,
/// `conv_head`, `bn2`, `classifier`) onto the names of the EfficientNet-Lite PyTorch checkpoints
/// that ember uses (`_conv_stem`, `_bn0`, `_blocks.{n}.*`, `_conv_head`, `_bn1`, `_fc`).
///
/// Within a block the layer names depend on the block's kind, which only its stage tells: stage
/// 0 holds timm's depthwise-separable block (`conv_dw, bn1, conv_pw, bn2`), later stages its
/// inverted residuals (`conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3`). So the in-block rules run
/// while the stage index is still there, and the flattening of `{stage}.{block}` comes last. Each
/// rule's output starts with `_`, which no later rule matches, so no name is renamed twice.
/// `num_batches_tracked` keys pass through; loading ignores them.
const TIMM_EFFICIENTNET_LITE: [(&str, &str); 15] = [
    (r"^conv_stem\.", "_conv_stem."),
    (r"^bn1\.", "_bn0."),
    (r"^conv_head\.", "_conv_head."),
    (r"^bn2\.", "_bn1."),
    (r"^classifier\.", "_fc."),
    (r"^(blocks\.0\.\d+)\.conv_dw\.", "${1}._depthwise_conv."),
    (r"^(blocks\.0\.\d+)\.bn1\.", "${1}._bn1."),
    (r"^(blocks\.0\.\d+)\.conv_pw\.", "${1}._project_conv."),
    (r"^(blocks\.0\.\d+)\.bn2\.", "${1}._bn2."),
    (r"^(blocks\.\d+\.\d+)\.conv_pw\.", "${1}._expand_conv."),
    (r"^(blocks\.\d+\.\d+)\.bn1\.", "${1}._bn0."),
    (r"^(blocks\.\d+\.\d+)\.conv_dw\.", "${1}._depthwise_conv."),
    (r"^(blocks\.\d+\.\d+)\.bn2\.", "${1}._bn1."),
    (r"^(blocks\.\d+\.\d+)\.conv_pwl\.", "${1}._project_conv."),
    (r"^(blocks\.\d+\.\d+)\.bn3\.", "${1}._bn2."),
];

/// The last step of the `timm` preset: `blocks.{stage}.{block}.` numbered in forward order.
const TIMM_FLATTEN: (&str, &str) = (r"^blocks\.(\d+)\.(\d+)\.", "_blocks.{n}.");

impl RenameRule {
    /// The rules of the built-in preset `name` (see [`RENAME_PRESETS`]); fails naming it and the
    /// known presets otherwise.
    pub fn preset(name: &str) -> Result<Vec<RenameRule>> {
        match name {
            "timm" => {
                let mut rules: Vec<RenameRule> =
                    TIMM_EFFICIENTNET_LITE.iter().map(|(p, r)| RenameRule::regex(p, *r)).collect::<Result<_>>()?;
                rules.push(RenameRule::flatten(TIMM_FLATTEN.0, TIMM_FLATTEN.1)?);
                Ok(rules)
            }
            _ => {
                let known: Vec<&str> = RENAME_PRESETS.iter().map(|(n, _)| *n).collect();
                Err(Error::BadRule {
                    pattern: name.to_string(),
                    detail: format!(
                        "neither a rule (strip:P, add:P, regex:PATTERN=REPL, flatten:PATTERN=REPL) nor a preset ({})",
                        known.join(", ")
                    ),
                })
            }
        }
    }
}
