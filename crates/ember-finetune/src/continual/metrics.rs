//! The accuracy matrix of a task sequence and the two numbers the literature reads off it
//! (Lopez-Paz and Ranzato, "Gradient episodic memory for continual learning", 2017; Chaudhry et
//! al., "Riemannian walk for incremental learning", 2018).

use crate::{Error, Result};

/// `R[i][j]`: accuracy on task `j`'s test examples after training task `i`, for `j <= i` (row
/// `i` has `i + 1` entries: tasks not yet seen are not scored).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccuracyMatrix {
    rows: Vec<Vec<f64>>,
}

impl AccuracyMatrix {
    /// A matrix from its rows; fails unless row `i` has `i + 1` entries, each in `[0, 1]`.
    pub fn new(rows: Vec<Vec<f64>>) -> Result<Self> {
        let mut m = Self::default();
        for row in rows {
            m.push(row)?;
        }
        Ok(m)
    }

    /// Appends the row of the task just trained; fails unless it has one entry per task so far,
    /// each in `[0, 1]`.
    pub fn push(&mut self, row: Vec<f64>) -> Result<()> {
        let i = self.rows.len();
        if row.len() != i + 1 {
            return Err(Error::invalid(
                "accuracy matrix",
                format!("row {} has {} entries; after task {} it needs {}", i + 1, row.len(), i + 1, i + 1),
            ));
        }
        if let Some(bad) = row.iter().find(|a| !(0.0..=1.0).contains(*a)) {
            return Err(Error::invalid("accuracy matrix", format!("accuracy {bad} is not in [0, 1]")));
        }
        self.rows.push(row);
        Ok(())
    }

    /// The rows, `rows()[i][j]` = `R[i][j]`.
    pub fn rows(&self) -> &[Vec<f64>] {
        &self.rows
    }

    /// Number of tasks trained.
    pub fn tasks(&self) -> usize {
        self.rows.len()
    }

    /// Average accuracy: the mean of the last row, `(1/T) Σ_j R[T-1][j]` (0 when empty).
    pub fn average_accuracy(&self) -> f64 {
        match self.rows.last() {
            Some(last) => last.iter().sum::<f64>() / last.len() as f64,
            None => 0.0,
        }
    }

    /// Forgetting: the mean over the old tasks `j < T-1` of `max_{l < T-1} R[l][j] - R[T-1][j]`,
    /// the best accuracy a task ever had minus its final one. `None` before a second task.
    pub fn forgetting(&self) -> Option<f64> {
        let t = self.rows.len();
        if t < 2 {
            return None;
        }
        let last = &self.rows[t - 1];
        let drops: Vec<f64> = (0..t - 1)
            .map(|j| {
                let best = self.rows[j..t - 1].iter().map(|r| r[j]).fold(f64::NEG_INFINITY, f64::max);
                best - last[j]
            })
            .collect();
        Some(drops.iter().sum::<f64>() / drops.len() as f64)
    }
}
