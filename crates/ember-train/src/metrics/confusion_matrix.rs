//! Confusion matrix and the classification metrics derived from it.

/// Counts of (true class, predicted class) pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        Self { classes, counts: vec![0; classes * classes] }
    }

    /// A matrix from its counts, row `truth`, column `predicted`, row-major (what
    /// [`ConfusionMatrix::counts`] returns). Fails unless there are `classes²` counts.
    pub fn from_counts(classes: usize, counts: Vec<u64>) -> crate::Result<Self> {
        if counts.len() != classes * classes {
            return Err(crate::Error::Invalid(format!(
                "a confusion matrix of {classes} classes has {} counts, not {}",
                classes * classes,
                counts.len()
            )));
        }
        Ok(Self { classes, counts })
    }

    /// Every count, row `truth`, column `predicted`, row-major.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Records one prediction. Out-of-range classes are ignored.
    pub fn add(&mut self, truth: usize, predicted: usize) {
        if truth < self.classes && predicted < self.classes {
            self.counts[truth * self.classes + predicted] += 1;
        }
    }

    /// How often class `truth` was predicted as `predicted`.
    pub fn count(&self, truth: usize, predicted: usize) -> u64 {
        self.counts[truth * self.classes + predicted]
    }

    /// Rows (true class) of counts (predicted class).
    pub fn rows(&self) -> Vec<Vec<u64>> {
        self.counts.chunks(self.classes.max(1)).map(|r| r.to_vec()).collect()
    }

    /// Number of predictions recorded.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Fraction of correct predictions (0 when empty).
    pub fn accuracy(&self) -> f64 {
        let correct: u64 = (0..self.classes).map(|c| self.count(c, c)).sum();
        ratio(correct, self.total())
    }

    /// Samples whose true class is `class`.
    pub fn support(&self, class: usize) -> u64 {
        (0..self.classes).map(|p| self.count(class, p)).sum()
    }

    /// Of the samples predicted as `class`, the fraction that are (0 when none was predicted).
    pub fn precision(&self, class: usize) -> f64 {
        let predicted: u64 = (0..self.classes).map(|t| self.count(t, class)).sum();
        ratio(self.count(class, class), predicted)
    }

    /// Of the samples of `class`, the fraction predicted as such (0 when there are none).
    pub fn recall(&self, class: usize) -> f64 {
        ratio(self.count(class, class), self.support(class))
    }

    /// Harmonic mean of precision and recall (0 when both are 0).
    pub fn f1(&self, class: usize) -> f64 {
        let (p, r) = (self.precision(class), self.recall(class));
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// Unweighted mean of the per-class F1 scores.
    pub fn macro_f1(&self) -> f64 {
        self.average(Average::Macro, Self::f1)
    }

    /// Precision averaged over classes as `average` says.
    pub fn precision_avg(&self, average: Average) -> f64 {
        self.average(average, Self::precision)
    }

    /// Recall averaged over classes as `average` says.
    pub fn recall_avg(&self, average: Average) -> f64 {
        self.average(average, Self::recall)
    }

    /// F1 averaged over classes as `average` says.
    pub fn f1_avg(&self, average: Average) -> f64 {
        self.average(average, Self::f1)
    }

    /// scikit-learn's averaging: `Macro` is the plain mean over classes, `Weighted` weights each
    /// class by its support, `Micro` pools every class's counts (for single-label multi-class
    /// data all three micro scores equal the accuracy).
    fn average(&self, average: Average, metric: fn(&Self, usize) -> f64) -> f64 {
        if self.classes == 0 {
            return 0.0;
        }
        match average {
            Average::Macro => (0..self.classes).map(|c| metric(self, c)).sum::<f64>() / self.classes as f64,
            Average::Weighted => {
                let total = self.total();
                (0..self.classes).map(|c| metric(self, c) * self.support(c) as f64).sum::<f64>() / total.max(1) as f64
            }
            Average::Micro => self.accuracy(),
        }
    }
}

/// How per-class scores are combined (scikit-learn's `average=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Average {
    /// Unweighted mean over classes.
    Macro,
    /// Mean weighted by each class's support.
    Weighted,
    /// Pooled counts over all classes.
    Micro,
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_follow_their_definitions() {
        // truth, predicted
        let pairs = [(0, 0), (0, 0), (0, 1), (1, 1), (1, 0), (2, 2), (2, 1)];
        let mut m = ConfusionMatrix::new(3);
        for (t, p) in pairs {
            m.add(t, p);
        }
        assert_eq!(m.total(), 7);
        assert!((m.accuracy() - 4.0 / 7.0).abs() < 1e-12);
        // class 1: predicted 3 times, 1 correct; 2 samples truly class 1.
        assert!((m.precision(1) - 1.0 / 3.0).abs() < 1e-12);
        assert!((m.recall(1) - 0.5).abs() < 1e-12);
        assert!((m.f1(1) - 0.4).abs() < 1e-12);
        assert_eq!(m.rows(), vec![vec![2, 1, 0], vec![1, 1, 0], vec![0, 1, 1]]);
    }

    #[test]
    fn empty_classes_score_zero_not_nan() {
        let mut m = ConfusionMatrix::new(3);
        m.add(0, 0);
        assert_eq!(m.precision(2), 0.0);
        assert_eq!(m.recall(2), 0.0);
        assert_eq!(m.f1(2), 0.0);
        assert!(m.macro_f1().is_finite());
    }
}
