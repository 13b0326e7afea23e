//! Streaming metrics: accumulated batch by batch, read at the end of an epoch.

mod confusion_matrix;
mod regression;
mod top_k;

pub use confusion_matrix::{Average, ConfusionMatrix};
pub use regression::RegressionMetrics;
pub use top_k::TopKAccuracy;
