//! The training step of continual learning: masked cross-entropy, plus the EWC penalty or the
//! LwF distillation term, for `ember_train::Learner`.

use candle_core::Tensor;
use candle_nn::ModuleT;
use ember_layers::loss::cross_entropy;
use ember_layers::ParamStore;
use ember_train::{StepOutput, TrainStep};

use crate::continual::ewc::Ewc;
use crate::continual::lwf::lwf_loss;
use crate::continual::setting::apply_masks;
use crate::distill::DistillConfig;

/// The previous model and what LwF distils from it.
pub struct LwfTeacher<'a> {
    /// The network as it was when the current task began (run in eval mode).
    pub model: &'a dyn ModuleT,
    /// Column groups of the old classes ([`lwf_loss`]'s `old`).
    pub old: Vec<Tensor>,
    /// Temperature and weight.
    pub cfg: DistillConfig,
}

/// A [`TrainStep`] for one task of a sequence. Logits are masked by label
/// ([`super::label_masks`]) in training and evaluation, so the reported logits (and the
/// accuracy of [`ember_train::evaluate_step`]) are those of the setting. In training the loss is
/// the masked cross-entropy plus `ewc`'s penalty, or [`lwf_loss`] against `lwf`'s teacher; in
/// evaluation it is the masked cross-entropy alone.
pub struct ContinualStep<'a> {
    /// The network being trained.
    pub model: &'a dyn ModuleT,
    /// Its parameters (what the EWC penalty reads).
    pub store: &'a ParamStore,
    /// `(classes, classes)` additive masks, one row per label.
    pub masks: Tensor,
    /// The EWC penalty of the finished tasks, if that is the method.
    pub ewc: Option<&'a Ewc>,
    /// The previous model, if the method is LwF and a task has finished.
    pub lwf: Option<LwfTeacher<'a>>,
}

impl TrainStep for ContinualStep<'_> {
    fn step(&self, batch: &ember_data::Batch, train: bool) -> candle_core::Result<StepOutput> {
        let raw = self.model.forward_t(&batch.images, train)?;
        let logits = apply_masks(&raw, &self.masks, &batch.labels)?;
        let mut loss = match (&self.lwf, train) {
            (Some(lwf), true) => {
                let teacher = lwf.model.forward_t(&batch.images, false)?.detach();
                lwf_loss(&raw, &teacher, &batch.labels, &self.masks, &lwf.old, &lwf.cfg)?
            }
            _ => cross_entropy(&logits, &batch.labels)?,
        };
        if let (Some(ewc), true) = (self.ewc, train) {
            if !ewc.anchors().is_empty() {
                loss = (loss + ewc.penalty(self.store)?)?;
            }
        }
        Ok(StepOutput { loss, logits: Some(logits.detach()) })
    }
}
