//! `learning_curves.png` and `confusion_matrix.png` in the run directory.

use std::path::PathBuf;

use super::{Callback, CallbackContext, Control};
use crate::{plots, EpochReport, Result};

/// Redraws the learning curves (loss and accuracy per epoch) and the latest validation
/// confusion matrix as PNGs in `dir` after every epoch.
#[derive(Debug, Clone)]
pub struct PlotLogger {
    dir: PathBuf,
    class_names: Vec<String>,
}

impl PlotLogger {
    /// Draws into `dir`.
    pub fn new(dir: impl Into<PathBuf>, class_names: Vec<String>) -> Self {
        Self { dir: dir.into(), class_names }
    }
}

impl Callback for PlotLogger {
    fn name(&self) -> &str {
        "plots"
    }

    fn essential(&self) -> bool {
        false
    }

    fn on_epoch_end(&mut self, ctx: &CallbackContext, report: &EpochReport) -> Result<Control> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|source| crate::Error::Io(ember_io::IoError { path: self.dir.clone(), source }))?;
        let (w, h) = (960, 400);
        let png = plots::png_bytes(plots::learning_curves_rgb(ctx.history, w, h)?, w, h)?;
        plots::write_png(&self.dir.join("learning_curves.png"), &png)?;
        if let Some(m) = &report.val_confusion {
            let size = 560;
            let png = plots::png_bytes(plots::confusion_matrix_rgb(m, &self.class_names, size)?, size, size)?;
            plots::write_png(&self.dir.join("confusion_matrix.png"), &png)?;
        }
        Ok(Control::Continue)
    }
}
