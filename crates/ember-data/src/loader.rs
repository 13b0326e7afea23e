//! Mini-batches of tensors from a [`LabelledImages`] set.

use candle_core::{Device, Tensor};
use ember_augment::{sample_rng, Transform};
use image::GrayImage;
use rand::seq::SliceRandom;

use crate::{LabelledImages, Result};

/// One mini-batch.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `(b, 1, h, w)` f32 pixels scaled to `[0, 1]`.
    pub images: Tensor,
    /// `(b,)` u32 class labels.
    pub labels: Tensor,
}

/// Serves a [`LabelledImages`] set as mini-batches, optionally shuffled and augmented.
///
/// Epoch `e`'s order and every sample's augmentation depend only on `(seed, e, index)`, so a
/// run replays exactly.
pub struct DataLoader<'a> {
    data: &'a LabelledImages,
    batch_size: usize,
    shuffle_seed: Option<u64>,
    drop_last: bool,
    transform: Option<&'a dyn Transform<GrayImage>>,
}

impl std::fmt::Debug for DataLoader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataLoader")
            .field("len", &self.data.len())
            .field("batch_size", &self.batch_size)
            .field("shuffle_seed", &self.shuffle_seed)
            .field("drop_last", &self.drop_last)
            .field("augmented", &self.transform.is_some())
            .finish()
    }
}

impl<'a> DataLoader<'a> {
    /// Batches of `batch_size` (at least 1) in dataset order, the last one possibly smaller.
    pub fn new(data: &'a LabelledImages, batch_size: usize) -> Self {
        Self { data, batch_size: batch_size.max(1), shuffle_seed: None, drop_last: false, transform: None }
    }

    /// Shuffles every epoch with an order drawn from `(seed, epoch)`.
    pub fn with_shuffle(mut self, seed: u64) -> Self {
        self.shuffle_seed = Some(seed);
        self
    }

    /// Drops the last batch when it is smaller than `batch_size`.
    pub fn with_drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Applies `transform` to every sample, with the RNG of `(seed, epoch, index)`. The seed is
    /// the shuffle seed (0 when not shuffling).
    pub fn with_transform(mut self, transform: &'a dyn Transform<GrayImage>) -> Self {
        self.transform = Some(transform);
        self
    }

    /// Number of batches per epoch.
    pub fn num_batches(&self) -> usize {
        let n = self.data.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// Sample indices of `epoch`, in serving order.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.data.len()).collect();
        if let Some(seed) = self.shuffle_seed {
            // u64::MAX as the "index" keeps the shuffle stream apart from every sample's stream.
            order.shuffle(&mut sample_rng(seed, epoch, u64::MAX));
        }
        order
    }

    /// The batches of `epoch`, built on `device`.
    pub fn epoch(&self, epoch: u64, device: &Device) -> impl Iterator<Item = Result<Batch>> + '_ {
        let order = self.order(epoch);
        let device = device.clone();
        let n_batches = self.num_batches();
        (0..n_batches).map(move |b| {
            let end = ((b + 1) * self.batch_size).min(order.len());
            self.batch(&order[b * self.batch_size..end], epoch, &device)
        })
    }

    fn batch(&self, indices: &[usize], epoch: u64, device: &Device) -> Result<Batch> {
        let (h, w) = (self.data.height(), self.data.width());
        let mut pixels = Vec::with_capacity(indices.len() * h * w);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            match self.transform {
                None => pixels.extend(self.data.pixels(i).iter().map(|&p| p as f32 / 255.0)),
                Some(t) => {
                    let mut rng = sample_rng(self.shuffle_seed.unwrap_or(0), epoch, i as u64);
                    let img = t.apply(self.data.image(i), &mut rng)?;
                    if img.dimensions() != (w as u32, h as u32) {
                        return Err(crate::Error::Invalid {
                            what: "data loader".into(),
                            detail: format!("transform changed the image size from {w}x{h} to {:?}", img.dimensions()),
                        });
                    }
                    pixels.extend(img.as_raw().iter().map(|&p| p as f32 / 255.0));
                }
            }
            labels.push(self.data.labels()[i] as u32);
        }
        let b = indices.len();
        Ok(Batch {
            images: Tensor::from_vec(pixels, (b, 1, h, w), device)?,
            labels: Tensor::from_vec(labels, b, device)?,
        })
    }
}
