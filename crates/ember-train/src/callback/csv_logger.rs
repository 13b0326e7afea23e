//! `metrics.csv`: one row per epoch.

use std::path::PathBuf;

use super::{Callback, CallbackContext, Control};
use crate::{checkpoint, EpochReport, Error, Result};

/// Rewrites `path` after every epoch with one row per completed epoch (atomically, from the
/// full history, so a resumed run never duplicates rows).
#[derive(Debug, Clone)]
pub struct CsvLogger {
    path: PathBuf,
}

impl CsvLogger {
    /// Logs to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

/// The columns [`CsvLogger`] writes, in order.
pub const CSV_HEADER: &str = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,learning_rate,seconds";

/// The most bytes [`read_history`] reads: a run of a million epochs fits; a larger file is not
/// one ember wrote.
const MAX_CSV_BYTES: u64 = 256 << 20;

/// Reads a `metrics.csv` written by [`CsvLogger`] back into one report per epoch (without
/// confusion matrices), for comparing runs. A file with other columns, a malformed number or a
/// row of the wrong length is an error naming the file and line.
pub fn read_history(path: &std::path::Path) -> Result<Vec<EpochReport>> {
    let io = |source| Error::Io(ember_io::IoError { path: path.to_path_buf(), source });
    let len = std::fs::metadata(path).map_err(io)?.len();
    let bad = |detail: String| Error::Corrupt { path: path.to_path_buf(), detail };
    if len > MAX_CSV_BYTES {
        return Err(bad(format!("{len} bytes is more than a metrics file ember writes ({MAX_CSV_BYTES})")));
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default().trim();
    if header != CSV_HEADER {
        return Err(bad(format!("line 1: expected the header `{CSV_HEADER}`, found `{header}`")));
    }
    let mut history = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let line_no = i + 2;
        if fields.len() != 7 {
            return Err(bad(format!("line {line_no}: {} fields, expected 7", fields.len())));
        }
        let num = |k: usize| -> Result<f64> {
            fields[k].parse::<f64>().map_err(|_| bad(format!("line {line_no}: `{}` is not a number", fields[k])))
        };
        let opt_num = |k: usize| -> Result<Option<f64>> {
            if fields[k].is_empty() {
                Ok(None)
            } else {
                num(k).map(Some)
            }
        };
        let epoch = fields[0]
            .parse::<usize>()
            .map_err(|_| bad(format!("line {line_no}: epoch `{}` is not a whole number", fields[0])))?;
        history.push(EpochReport {
            epoch,
            epochs: 0,
            train_loss: num(1)?,
            train_accuracy: num(2)?,
            val_loss: opt_num(3)?,
            val_accuracy: opt_num(4)?,
            learning_rate: num(5)?,
            seconds: num(6)?,
            val_confusion: None,
        });
    }
    let epochs = history.len();
    for r in &mut history {
        r.epochs = epochs;
    }
    Ok(history)
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v}")).unwrap_or_default()
}

impl Callback for CsvLogger {
    fn name(&self) -> &str {
        "csv_logger"
    }

    fn essential(&self) -> bool {
        false
    }

    fn on_epoch_end(&mut self, ctx: &CallbackContext, _report: &EpochReport) -> Result<Control> {
        let mut text = format!("{CSV_HEADER}\n");
        for r in ctx.history {
            text.push_str(&format!(
                "{},{},{},{},{},{},{:.3}\n",
                r.epoch,
                r.train_loss,
                r.train_accuracy,
                opt(r.val_loss),
                opt(r.val_accuracy),
                r.learning_rate,
                r.seconds
            ));
        }
        checkpoint::write_atomically(&self.path, |tmp| {
            std::fs::write(tmp, &text)
                .map_err(|source| Error::Io(ember_io::IoError { path: tmp.to_path_buf(), source }))
        })?;
        Ok(Control::Continue)
    }
}
