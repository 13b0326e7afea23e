//! Callbacks: code that runs at the end of every batch and epoch of [`crate::Learner::fit`].

mod csv_logger;
mod early_stopping;
mod model_checkpoint;
#[cfg(feature = "plots")]
mod plot_logger;
#[cfg(feature = "tensorboard")]
mod tensorboard_logger;

use std::path::Path;

use ember_layers::ParamStore;

pub use csv_logger::{read_history, CsvLogger, CSV_HEADER};
pub use early_stopping::{EarlyStopping, Mode};
pub use model_checkpoint::ModelCheckpoint;
#[cfg(feature = "plots")]
pub use plot_logger::PlotLogger;
#[cfg(feature = "tensorboard")]
pub use tensorboard_logger::TensorBoardLogger;

use crate::{EpochReport, Result};

/// Whether training goes on after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Keep training.
    Continue,
    /// Stop after this epoch.
    Stop,
}

/// What a callback can see.
pub struct CallbackContext<'a> {
    /// The model's parameters and buffers.
    pub store: &'a ParamStore,
    /// The optimizer's current learning rate.
    pub learning_rate: f64,
    /// Optimizer steps taken so far.
    pub global_step: u64,
    /// Every completed epoch, the current one last.
    pub history: &'a [EpochReport],
    /// The run directory, if the learner has one.
    pub run_dir: Option<&'a Path>,
}

/// One optimizer step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// 1-based epoch.
    pub epoch: usize,
    /// 0-based batch within the epoch.
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Optimizer steps taken so far (this one included).
    pub global_step: u64,
    /// This batch's loss.
    pub loss: f64,
}

/// Hooks into the training loop. Every method has a default that does nothing.
///
/// A callback that keeps state across epochs (a best value, a patience counter) returns it from
/// [`Callback::state`] so that a resumed run continues exactly; `name` keys that state.
pub trait Callback {
    /// A name unique among the learner's callbacks.
    fn name(&self) -> &str;

    /// After every optimizer step.
    fn on_batch_end(&mut self, _ctx: &CallbackContext, _step: &StepReport) -> Result<()> {
        Ok(())
    }

    /// After every epoch's validation; returning [`Control::Stop`] ends training.
    fn on_epoch_end(&mut self, _ctx: &CallbackContext, _report: &EpochReport) -> Result<Control> {
        Ok(Control::Continue)
    }

    /// When training ends (normally or by a stop).
    fn on_train_end(&mut self, _ctx: &CallbackContext) -> Result<()> {
        Ok(())
    }

    /// Whether an error from this callback stops training (the default). Loggers (CSV,
    /// TensorBoard, plots) return `false`: their error becomes a [`crate::CallbackFailure`] in
    /// [`crate::Learner::failures`], the callback is skipped for the rest of the run, and
    /// training goes on to commit its resume file.
    fn essential(&self) -> bool {
        true
    }

    /// State to save for a resume.
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Restores [`Callback::state`].
    fn load_state(&mut self, _state: &serde_json::Value) -> Result<()> {
        Ok(())
    }
}

/// A boxed callback is a callback, so a list of them (`Vec<Box<dyn Callback>>`, built once and
/// given to a learner or a data-parallel replica) needs no wrapper.
impl<C: Callback + ?Sized> Callback for Box<C> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn on_batch_end(&mut self, ctx: &CallbackContext, step: &StepReport) -> Result<()> {
        (**self).on_batch_end(ctx, step)
    }

    fn on_epoch_end(&mut self, ctx: &CallbackContext, report: &EpochReport) -> Result<Control> {
        (**self).on_epoch_end(ctx, report)
    }

    fn on_train_end(&mut self, ctx: &CallbackContext) -> Result<()> {
        (**self).on_train_end(ctx)
    }

    fn essential(&self) -> bool {
        (**self).essential()
    }

    fn state(&self) -> serde_json::Value {
        (**self).state()
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        (**self).load_state(state)
    }
}

/// A closure called with every epoch report.
pub struct OnEpoch<F>(pub F);

impl<F: FnMut(&EpochReport)> Callback for OnEpoch<F> {
    fn name(&self) -> &str {
        "on_epoch"
    }

    fn on_epoch_end(&mut self, _ctx: &CallbackContext, report: &EpochReport) -> Result<Control> {
        (self.0)(report);
        Ok(Control::Continue)
    }
}
