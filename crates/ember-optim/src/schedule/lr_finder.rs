//! The learning-rate range test (Smith, 2017; fastai's `lr_find`).

/// Sweep settings: learning rates grow exponentially from `start_lr` to `end_lr` over at most
/// `steps` steps, stopping early once the smoothed loss exceeds `divergence` times its best.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrFinder {
    /// First learning rate.
    pub start_lr: f64,
    /// Last learning rate.
    pub end_lr: f64,
    /// Number of steps (at least 2).
    pub steps: usize,
    /// Exponential smoothing of the loss (fastai: 0.98).
    pub smoothing: f64,
    /// Stop when the smoothed loss exceeds this multiple of the best.
    pub divergence: f64,
}

impl Default for LrFinder {
    fn default() -> Self {
        Self { start_lr: 1e-7, end_lr: 10.0, steps: 100, smoothing: 0.98, divergence: 4.0 }
    }
}

/// What the sweep saw.
#[derive(Debug, Clone, PartialEq)]
pub struct LrFinderResult {
    /// Learning rate of each step taken.
    pub lrs: Vec<f64>,
    /// Smoothed (bias-corrected) loss after each step.
    pub losses: Vec<f64>,
    /// The learning rate where the smoothed loss falls fastest (steepest negative slope in
    /// log-lr), a good peak rate for one-cycle training.
    pub suggestion: Option<f64>,
}

/// Runs the sweep: `train_step(lr)` must take one optimizer step at `lr` on the next batch and
/// return that batch's loss. Errors from `train_step` stop the sweep and are returned.
pub fn lr_find<E>(finder: &LrFinder, mut train_step: impl FnMut(f64) -> Result<f64, E>) -> Result<LrFinderResult, E> {
    let steps = finder.steps.max(2);
    let ratio = (finder.end_lr / finder.start_lr).powf(1.0 / (steps - 1) as f64);
    let (mut lrs, mut losses) = (Vec::new(), Vec::new());
    let (mut avg, mut best) = (0.0, f64::INFINITY);
    for i in 0..steps {
        let lr = finder.start_lr * ratio.powi(i as i32);
        let loss = train_step(lr)?;
        avg = finder.smoothing * avg + (1.0 - finder.smoothing) * loss;
        let smoothed = avg / (1.0 - finder.smoothing.powi(i as i32 + 1));
        lrs.push(lr);
        losses.push(smoothed);
        if !smoothed.is_finite() || smoothed > finder.divergence * best {
            break;
        }
        best = best.min(smoothed);
    }
    let suggestion = steepest_descent(&lrs, &losses);
    Ok(LrFinderResult { lrs, losses, suggestion })
}

/// Learning rate at the most negative slope of loss over log(lr), ignoring the noisy ends.
fn steepest_descent(lrs: &[f64], losses: &[f64]) -> Option<f64> {
    let n = losses.iter().take_while(|l| l.is_finite()).count();
    if n < 3 {
        return None;
    }
    (1..n - 1)
        .map(|i| ((losses[i + 1] - losses[i - 1]) / (lrs[i + 1].ln() - lrs[i - 1].ln()), lrs[i]))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, lr)| lr)
}
