//! Class- and task-incremental learning, as masks over one classifier head's logits.
//!
//! The network has one output per class of the dataset from the start. A class whose task has
//! not arrived gets a logit of [`MASKED`]: its softmax probability is 0, so it is never
//! predicted and its head row receives no gradient, exactly as if the head grew when the task
//! arrived. In the task-incremental setting every example is scored only among its own task's
//! classes (the task identity is known at training and test time), which is the same as one
//! head per task whose outputs share nothing.

use candle_core::{Device, Tensor};

use crate::continual::TaskSequence;

/// The logit given to a class an example may not be predicted as. Finite, because
/// `0 · (-inf)` in a loss's backward pass would be NaN; far enough below any real logit that
/// `exp` of the difference is 0 in f32.
pub const MASKED: f32 = -1e9;

/// Which classes compete in a prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// One growing head over every class seen so far; evaluation over all of them, without
    /// knowing the task.
    ClassIncremental,
    /// One head per task (logits masked to the example's task's classes), in training and
    /// evaluation: the task identity is given.
    TaskIncremental,
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Setting::ClassIncremental => "class-incremental",
            Setting::TaskIncremental => "task-incremental",
        })
    }
}

/// The additive logit masks once tasks `0..=current` have arrived, one row per label: row `y`
/// is added to the logits of an example labelled `y` (0 where the class may be predicted,
/// [`MASKED`] elsewhere). In the class-incremental setting every row allows every class seen
/// so far; in the task-incremental setting row `y` allows the classes of `y`'s task.
///
/// # Shapes
/// - output: `(classes, classes)` f32
pub fn label_masks(setting: Setting, tasks: &TaskSequence, current: usize) -> candle_core::Result<Tensor> {
    let classes = tasks.classes();
    let seen = tasks.seen(current);
    let mut rows = vec![MASKED; classes * classes];
    for y in 0..classes {
        let allowed: &[u32] = match (setting, tasks.task_of(y as u32)) {
            (Setting::TaskIncremental, Some(t)) if t <= current => &tasks.tasks()[t],
            _ => &seen,
        };
        for &c in allowed {
            rows[y * classes + c as usize] = 0.0;
        }
    }
    Tensor::from_vec(rows, (classes, classes), &Device::Cpu)
}

/// `logits` with each row's mask added: row `i` gets `masks[labels[i]]`.
///
/// # Shapes
/// - `logits`: `(b, classes)`; `masks`: `(classes, classes)`; `labels`: `(b,)` u32
/// - output: `(b, classes)`
pub fn apply_masks(logits: &Tensor, masks: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    let rows = masks.to_device(logits.device())?.index_select(&labels.to_device(logits.device())?, 0)?;
    logits + rows.to_dtype(logits.dtype())?
}
