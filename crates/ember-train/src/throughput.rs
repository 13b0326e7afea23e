//! Training and inference throughput in images per second, measured the way timm's benchmark
//! script does: warm-up steps first (allocator pools, caches, branch predictors), then a timed run;
//! inference as the median of several timed passes.

use std::time::Instant;

use candle_core::Tensor;

/// How many batches to warm up on and to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThroughputConfig {
    /// Training steps run before the clock starts.
    pub warmup_batches: usize,
    /// Training steps timed.
    pub timed_batches: usize,
    /// Timed inference passes over the inference batches; the median is reported.
    pub inference_passes: usize,
}

impl Default for ThroughputConfig {
    fn default() -> Self {
        Self { warmup_batches: 20, timed_batches: 300, inference_passes: 3 }
    }
}

/// Images per second of `step` (forward, loss, backward, optimizer update) over `batches`,
/// cycling through them: `warmup_batches` untimed steps, then `timed_batches` timed ones.
///
/// # Errors
/// The first error `step` returns, or an error when `batches` is empty.
pub fn training_images_per_s<E>(
    batches: &[(Tensor, Tensor)],
    cfg: &ThroughputConfig,
    mut step: impl FnMut(&Tensor, &Tensor) -> Result<(), E>,
) -> Result<f64, E>
where
    E: From<candle_core::Error>,
{
    if batches.is_empty() {
        return Err(candle_core::Error::Msg("throughput: no batches to train on".into()).into());
    }
    let mut cycle = batches.iter().cycle();
    for _ in 0..cfg.warmup_batches {
        if let Some((x, y)) = cycle.next() {
            step(x, y)?;
        }
    }
    let start = Instant::now();
    let mut images = 0;
    for _ in 0..cfg.timed_batches {
        if let Some((x, y)) = cycle.next() {
            step(x, y)?;
            images += x.dim(0)?;
        }
    }
    Ok(images as f64 / start.elapsed().as_secs_f64())
}

/// Median images per second of `forward` over all of `images`, after one untimed pass.
///
/// # Errors
/// The first error `forward` returns, or an error when `images` is empty.
pub fn inference_images_per_s<E>(
    images: &[Tensor],
    cfg: &ThroughputConfig,
    mut forward: impl FnMut(&Tensor) -> Result<Tensor, E>,
) -> Result<f64, E>
where
    E: From<candle_core::Error>,
{
    if images.is_empty() {
        return Err(candle_core::Error::Msg("throughput: no images to run".into()).into());
    }
    let total: usize = images.iter().map(|x| x.dim(0)).sum::<candle_core::Result<usize>>()?;
    for x in images {
        forward(x)?;
    }
    let mut rates = Vec::with_capacity(cfg.inference_passes.max(1));
    for _ in 0..cfg.inference_passes.max(1) {
        let start = Instant::now();
        for x in images {
            forward(x)?;
        }
        rates.push(total as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    Ok(rates[rates.len() / 2])
}
