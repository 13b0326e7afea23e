//! Regression metrics: mean squared error, mean absolute error, R².

/// Streaming MSE, MAE and coefficient of determination over all predicted values.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RegressionMetrics {
    n: u64,
    sum_sq_err: f64,
    sum_abs_err: f64,
    sum_y: f64,
    sum_y_sq: f64,
}

impl RegressionMetrics {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds pairs of predictions and targets.
    pub fn add(&mut self, predictions: &[f64], targets: &[f64]) {
        for (&p, &y) in predictions.iter().zip(targets) {
            let e = p - y;
            self.n += 1;
            self.sum_sq_err += e * e;
            self.sum_abs_err += e.abs();
            self.sum_y += y;
            self.sum_y_sq += y * y;
        }
    }

    /// Mean squared error.
    pub fn mse(&self) -> f64 {
        self.sum_sq_err / self.n.max(1) as f64
    }

    /// Mean absolute error.
    pub fn mae(&self) -> f64 {
        self.sum_abs_err / self.n.max(1) as f64
    }

    /// `1 - SS_res / SS_tot` (scikit-learn's `r2_score`; 0 when the targets are constant and
    /// the predictions imperfect, 1 when both are perfect).
    pub fn r2(&self) -> f64 {
        let n = self.n.max(1) as f64;
        let ss_tot = self.sum_y_sq - self.sum_y * self.sum_y / n;
        if ss_tot <= 0.0 {
            return if self.sum_sq_err == 0.0 { 1.0 } else { 0.0 };
        }
        1.0 - self.sum_sq_err / ss_tot
    }
}
