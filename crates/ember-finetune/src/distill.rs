//! Knowledge distillation (Hinton, Vinyals and Dean, "Distilling the knowledge in a neural
//! network", 2015): a student learns from a teacher's softened probabilities and the labels.

use candle_core::{Tensor, D};
use candle_nn::ModuleT;
use ember_layers::loss::cross_entropy;
use ember_train::{StepOutput, TrainStep};

/// Temperature and weight of the soft targets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DistillConfig {
    /// Softmax temperature `T` applied to teacher and student logits.
    pub temperature: f64,
    /// Weight `α` of the soft loss; the hard (label) loss gets `1 - α`.
    pub alpha: f64,
}

impl Default for DistillConfig {
    /// `T = 4`, `α = 0.9`.
    fn default() -> Self {
        Self { temperature: 4.0, alpha: 0.9 }
    }
}

impl DistillConfig {
    /// Fails unless `T` is a positive number (at `T = 0` the softened outputs are undefined)
    /// and `α` lies in `[0, 1]`.
    pub fn validate(&self) -> crate::Result<()> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(crate::Error::invalid(
                "distillation",
                format!("the temperature must be a positive number, got {}", self.temperature),
            ));
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(crate::Error::invalid(
                "distillation",
                format!("alpha (the soft loss's weight) must lie in [0, 1], got {}", self.alpha),
            ));
        }
        Ok(())
    }
}

/// `α · T² · KL(softmax(t / T) ‖ softmax(s / T)) + (1 - α) · CE(s, labels)`, batch means. The
/// `T²` keeps the soft gradients' scale independent of `T` (Hinton et al., section 2).
///
/// # Shapes
/// - `student`, `teacher`: `(b, classes)` logits
/// - `labels`: `(b,)` u32
/// - output: scalar
pub fn distillation_loss(
    student: &Tensor,
    teacher: &Tensor,
    labels: &Tensor,
    cfg: &DistillConfig,
) -> candle_core::Result<Tensor> {
    if let Err(e) = cfg.validate() {
        candle_core::bail!("{e}")
    }
    let hard = cross_entropy(student, labels)?;
    if cfg.alpha == 0.0 {
        return Ok(hard);
    }
    let soft = soft_target_loss(student, teacher, cfg.temperature)?;
    soft.affine(cfg.alpha, 0.0)? + hard.affine(1.0 - cfg.alpha, 0.0)?
}

/// The soft part of [`distillation_loss`] alone: `T² · KL(softmax(t / T) ‖ softmax(s / T))`, a
/// batch mean; the teacher is detached. Learning without forgetting applies it to the old
/// classes' columns only (`crate::lwf_loss`).
///
/// # Shapes
/// - `student`, `teacher`: `(b, classes)` logits
/// - output: scalar
pub fn soft_target_loss(student: &Tensor, teacher: &Tensor, temperature: f64) -> candle_core::Result<Tensor> {
    if !(temperature > 0.0 && temperature.is_finite()) {
        candle_core::bail!("soft targets: the temperature must be a positive number, got {temperature}")
    }
    let t = temperature;
    let log_p_s = candle_nn::ops::log_softmax(&(student / t)?, D::Minus1)?;
    let log_p_t = candle_nn::ops::log_softmax(&(teacher.detach() / t)?, D::Minus1)?;
    let b = student.dim(0)? as f64;
    let kl = (log_p_t.exp()? * (log_p_t - log_p_s)?)?.sum_all()?;
    kl.affine(t * t / b, 0.0)
}

/// A [`TrainStep`] training `student` against `teacher` (any classifier, an
/// [`crate::Ensemble`] too; run in eval mode on the same batch). In eval mode the loss is the
/// student's plain cross-entropy. With `α = 0` the teacher is not run: the student trains alone.
pub struct Distill<'a> {
    /// The model being trained.
    pub student: &'a dyn ModuleT,
    /// The model whose outputs it imitates.
    pub teacher: &'a dyn ModuleT,
    /// Temperature and weight.
    pub cfg: DistillConfig,
}

impl TrainStep for Distill<'_> {
    fn step(&self, batch: &ember_data::Batch, train: bool) -> candle_core::Result<StepOutput> {
        let logits = self.student.forward_t(&batch.images, train)?;
        let loss = if train && self.cfg.alpha > 0.0 {
            let teacher = self.teacher.forward_t(&batch.images, false)?.detach();
            distillation_loss(&logits, &teacher, &batch.labels, &self.cfg)?
        } else {
            cross_entropy(&logits, &batch.labels)?
        };
        Ok(StepOutput { loss, logits: Some(logits) })
    }
}
