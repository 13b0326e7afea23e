//! The fit loop and evaluation.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::ModuleT;
use ember_data::DataLoader;
use ember_layers::loss::cross_entropy;
use ember_optim::{Optimizer, Schedule};

use crate::{ConfusionMatrix, Error, Result};

/// How [`fit`] trains.
pub struct FitOptions<'a> {
    /// Number of passes over the training data.
    pub epochs: usize,
    /// Schedule stepped before every optimizer step (global step index), if any.
    pub schedule: Option<&'a dyn Schedule>,
    /// Number of classes (for validation metrics).
    pub classes: usize,
    /// Device batches are built on (the model's device).
    pub device: Device,
}

impl FitOptions<'_> {
    /// `epochs` epochs, no schedule, 10 classes.
    pub fn new(epochs: usize) -> Self {
        Self { epochs, schedule: None, classes: 10, device: Device::Cpu }
    }
}

impl<'a> FitOptions<'a> {
    /// Steps `schedule` every batch.
    pub fn with_schedule(mut self, schedule: &'a dyn Schedule) -> Self {
        self.schedule = Some(schedule);
        self
    }
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Total epochs of the run.
    pub epochs: usize,
    /// Mean training loss over the epoch's batches (weighted by batch size).
    pub train_loss: f64,
    /// Training accuracy over the epoch (augmented samples, train mode).
    pub train_accuracy: f64,
    /// Validation loss, when a validation set was given.
    pub val_loss: Option<f64>,
    /// Validation accuracy, when a validation set was given.
    pub val_accuracy: Option<f64>,
    /// Learning rate of the epoch's last step.
    pub learning_rate: f64,
    /// Wall-clock seconds for training and validation.
    pub seconds: f64,
}

/// Result of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Predictions against labels.
    pub confusion: ConfusionMatrix,
}

/// Trains `model` with `optimizer` on `train` for `options.epochs` epochs, minimising
/// cross-entropy, validating on `val` after each epoch. `on_epoch` sees every report as it
/// happens (the CLI prints them); all reports are returned.
pub fn fit(
    model: &dyn ModuleT,
    optimizer: &mut dyn Optimizer,
    train: &DataLoader,
    val: Option<&DataLoader>,
    options: &FitOptions,
    mut on_epoch: impl FnMut(&EpochReport),
) -> Result<Vec<EpochReport>> {
    let device = &options.device;
    let mut history = Vec::with_capacity(options.epochs);
    let batches = train.num_batches();
    for epoch in 0..options.epochs {
        let start = Instant::now();
        let (mut loss_sum, mut seen, mut correct) = (0f64, 0usize, 0u64);
        for (b, batch) in train.epoch(epoch as u64, device).enumerate() {
            let batch = batch?;
            if let Some(s) = options.schedule {
                s.apply(epoch * batches + b, optimizer);
            }
            let logits = model.forward_t(&batch.images, true)?;
            let loss = cross_entropy(&logits, &batch.labels)?;
            let loss_value = loss.to_scalar::<f32>()?;
            if !loss_value.is_finite() {
                return Err(Error::NonFiniteLoss { epoch: epoch + 1, batch: b, loss: loss_value });
            }
            optimizer.step(&loss.backward()?)?;
            let n = batch.labels.dims1()?;
            loss_sum += loss_value as f64 * n as f64;
            seen += n;
            correct += count_correct(&logits, &batch.labels)?;
        }
        let (val_loss, val_accuracy) = match val {
            Some(v) => {
                let e = evaluate_on(model, v, options.classes, device)?;
                (Some(e.loss), Some(e.confusion.accuracy()))
            }
            None => (None, None),
        };
        let report = EpochReport {
            epoch: epoch + 1,
            epochs: options.epochs,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            val_loss,
            val_accuracy,
            learning_rate: optimizer.learning_rate(),
            seconds: start.elapsed().as_secs_f64(),
        };
        on_epoch(&report);
        history.push(report);
    }
    Ok(history)
}

fn count_correct(logits: &Tensor, labels: &Tensor) -> Result<u64> {
    let predicted = logits.argmax(1)?;
    Ok(predicted.eq(labels)?.to_dtype(DType::U32)?.sum_all()?.to_scalar::<u32>()? as u64)
}

/// Runs `model` (on the CPU) in eval mode over `data` and compares its predictions with the
/// labels.
pub fn evaluate(model: &dyn ModuleT, data: &DataLoader, classes: usize) -> Result<Evaluation> {
    evaluate_on(model, data, classes, &Device::Cpu)
}

/// [`evaluate`] with batches built on `device`.
pub fn evaluate_on(model: &dyn ModuleT, data: &DataLoader, classes: usize, device: &Device) -> Result<Evaluation> {
    let mut confusion = ConfusionMatrix::new(classes);
    let (mut loss_sum, mut seen) = (0f64, 0usize);
    for batch in data.epoch(0, device) {
        let batch = batch?;
        let logits = model.forward_t(&batch.images, false)?;
        let n = batch.labels.dims1()?;
        loss_sum += cross_entropy(&logits, &batch.labels)?.to_scalar::<f32>()? as f64 * n as f64;
        seen += n;
        let predicted = logits.argmax(1)?.to_vec1::<u32>()?;
        let labels = batch.labels.to_vec1::<u32>()?;
        for (t, p) in labels.into_iter().zip(predicted) {
            confusion.add(t as usize, p as usize);
        }
    }
    Ok(Evaluation { loss: loss_sum / seen.max(1) as f64, confusion })
}
