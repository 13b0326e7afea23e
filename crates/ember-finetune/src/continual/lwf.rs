//! Learning without forgetting (Li and Hoiem, "Learning without forgetting", ECCV 2016 / TPAMI
//! 2018): while a new task trains, the network's outputs for the old classes are distilled from
//! those of the network as it was before the task, on the new task's images alone.

use candle_core::Tensor;
use ember_layers::loss::cross_entropy;

use crate::continual::setting::apply_masks;
use crate::distill::{soft_target_loss, DistillConfig};

/// `(1 - α) · CE(logits + mask, labels) + α · mean_g T² KL(softmax(teacher_g / T) ‖
/// softmax(logits_g / T))`, where `g` runs over the `old` groups of class columns (one group of
/// every old class in the class-incremental setting, one per old task in the task-incremental
/// setting, as Li and Hoiem's one head per task) and the mask comes from `masks` by label
/// ([`super::label_masks`]). The soft term reads the unmasked logits: the mask would hide the
/// old classes from a new task's images. With `α = 0` or no old group it is the cross-entropy
/// alone. The weights follow [`crate::distillation_loss`]'s `α`/`1 - α` convention.
///
/// # Shapes
/// - `logits`, `teacher`: `(b, classes)`; `masks`: `(classes, classes)`; `labels`: `(b,)` u32
/// - `old`: `(k,)` u32 column indices per group
/// - output: scalar
pub fn lwf_loss(
    logits: &Tensor,
    teacher: &Tensor,
    labels: &Tensor,
    masks: &Tensor,
    old: &[Tensor],
    cfg: &DistillConfig,
) -> candle_core::Result<Tensor> {
    if let Err(e) = cfg.validate() {
        candle_core::bail!("learning without forgetting: {e}")
    }
    let hard = cross_entropy(&apply_masks(logits, masks, labels)?, labels)?;
    if cfg.alpha == 0.0 || old.is_empty() {
        return Ok(hard);
    }
    let mut soft = Vec::with_capacity(old.len());
    for columns in old {
        let s = logits.index_select(columns, 1)?;
        let t = teacher.index_select(columns, 1)?;
        soft.push(soft_target_loss(&s, &t, cfg.temperature)?);
    }
    let soft = Tensor::stack(&soft, 0)?.mean_all()?;
    soft.affine(cfg.alpha, 0.0)? + hard.affine(1.0 - cfg.alpha, 0.0)?
}
