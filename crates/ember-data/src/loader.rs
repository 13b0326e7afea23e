//! Mini-batches of tensors from any [`Dataset`], built by background workers.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};
use ember_augment::{sample_rng, Transform};
use image::{DynamicImage, GrayImage, RgbImage};
use rand::seq::SliceRandom;

use crate::{ColorMode, Dataset, Error, Example, Features, Result};

/// One mini-batch.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Images: `(b, c, h, w)` f32 scaled to `[0, 1]`, then normalised per channel when the
    /// loader has a normalisation; tabular rows: `(b, features)` f32.
    pub images: Tensor,
    /// `(b,)` u32 class labels.
    pub labels: Tensor,
}

/// Serves a [`Dataset`] as mini-batches, optionally shuffled and augmented, built by `workers`
/// background threads with a bounded queue of ready batches.
///
/// Epoch `e`'s order and every sample's augmentation depend only on `(seed, e, index)`, so the
/// batches are the same, in the same order, whatever the number of workers.
#[derive(Clone)]
pub struct DataLoader {
    data: Arc<dyn Dataset>,
    batch_size: usize,
    shuffle_seed: Option<u64>,
    drop_last: bool,
    workers: usize,
    prefetch: usize,
    gray: Option<Arc<dyn Transform<GrayImage>>>,
    rgb: Option<Arc<dyn Transform<RgbImage>>>,
    color: Option<ColorMode>,
    normalization: Option<Arc<Normalization>>,
    eval_gray: Option<Arc<dyn Transform<GrayImage>>>,
    eval_rgb: Option<Arc<dyn Transform<RgbImage>>>,
    shard: Option<Shard>,
}

/// What a shard does with the examples left over when the dataset's size is not a multiple of
/// the number of ranks (see [`DataLoader::shard`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShardTail {
    /// Repeats the head of the epoch's permutation until its length is a multiple of `world`
    /// (PyTorch's `DistributedSampler` with `drop_last=False`): every rank serves
    /// `ceil(n / world)` examples, a few of them twice in the epoch as a whole.
    Pad,
    /// Drops the last `n % world` positions of the permutation (`DistributedSampler` with
    /// `drop_last=True`): every rank serves `floor(n / world)` examples.
    Drop,
    /// Neither: rank `r` serves positions `r, r + world, ...` below `n`, so the first `n % world`
    /// ranks serve one example more. Every example is seen exactly once, which is what a sharded
    /// *evaluation* needs; training ranks would disagree on their number of batches.
    Uneven,
}

/// One rank's share of every epoch (see [`DataLoader::shard`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    /// This rank, `0..world`.
    pub rank: usize,
    /// Number of ranks.
    pub world: usize,
    /// What happens to the permutation's tail.
    pub tail: ShardTail,
}

impl Shard {
    /// Number of examples this rank serves from a dataset of `n` examples.
    pub fn len(&self, n: usize) -> usize {
        match self.tail {
            ShardTail::Pad => n.div_ceil(self.world),
            ShardTail::Drop => n / self.world,
            ShardTail::Uneven => n.saturating_sub(self.rank).div_ceil(self.world),
        }
    }

    /// Whether this rank serves nothing from a dataset of `n` examples.
    pub fn is_empty(&self, n: usize) -> bool {
        self.len(n) == 0
    }

    /// This rank's examples, in serving order, from an epoch's full permutation: positions
    /// `rank, rank + world, rank + 2·world, ...` of the permutation, padded by wrapping around
    /// to its head ([`ShardTail::Pad`]).
    pub fn take(&self, permutation: &[usize]) -> Vec<usize> {
        let n = permutation.len();
        (0..self.len(n)).map(|k| permutation[(self.rank + k * self.world) % n]).collect()
    }
}

/// `(x - mean[c]) / std[c]` per channel of `[0, 1]` pixels, as `(x - mean) * inv_std`.
#[derive(Debug, Clone, PartialEq)]
struct Normalization {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

impl std::fmt::Debug for DataLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataLoader")
            .field("len", &self.data.len())
            .field("batch_size", &self.batch_size)
            .field("shuffle_seed", &self.shuffle_seed)
            .field("drop_last", &self.drop_last)
            .field("workers", &self.workers)
            .field("prefetch", &self.prefetch)
            .field("shard", &self.shard)
            .finish()
    }
}

impl DataLoader {
    /// Batches of `batch_size` in dataset order, the last one possibly smaller, built on the
    /// calling thread. A batch size of 0 is kept as given (not rounded up) and every epoch then
    /// fails with [`Error::Invalid`]; [`DataLoader::check`] reports it up front.
    pub fn new(data: Arc<dyn Dataset>, batch_size: usize) -> Self {
        Self {
            data,
            batch_size,
            shuffle_seed: None,
            drop_last: false,
            workers: 0,
            prefetch: 2,
            gray: None,
            rgb: None,
            color: None,
            normalization: None,
            eval_gray: None,
            eval_rgb: None,
            shard: None,
        }
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

    /// Rank `rank`'s share of every epoch out of `world` ranks, the way PyTorch's
    /// `DistributedSampler` shares it: every rank draws the same seeded permutation of epoch `e`,
    /// pads it by repeating its head to a multiple of `world`, and takes positions
    /// `rank, rank + world, rank + 2·world, ...`. The shards of one epoch are disjoint apart from
    /// the padding, equal in size (`ceil(n / world)` examples) and together the whole
    /// permutation; batching (`batch_size`, `drop_last`) then applies to the shard. See
    /// [`DataLoader::shard_with`] to truncate instead of padding.
    ///
    /// Fails when `world` is 0, `rank >= world`, or the loader is already sharded.
    pub fn shard(&self, rank: usize, world: usize) -> Result<Self> {
        self.shard_with(rank, world, ShardTail::Pad)
    }

    /// [`DataLoader::shard`] with a chosen treatment of the permutation's tail.
    pub fn shard_with(&self, rank: usize, world: usize, tail: ShardTail) -> Result<Self> {
        let invalid = |detail: String| Err(Error::Invalid { what: "data loader shard".into(), detail });
        if world == 0 {
            return invalid("a world of 0 ranks has no shards".into());
        }
        if rank >= world {
            return invalid(format!("rank {rank} is outside a world of {world} ranks (0..{world})"));
        }
        if let Some(s) = self.shard {
            return invalid(format!(
                "the loader is already rank {} of {}; shard the unsharded loader",
                s.rank, s.world
            ));
        }
        Ok(Self { shard: Some(Shard { rank, world, tail }), ..self.clone() })
    }

    /// The shard this loader serves, if any.
    pub fn sharding(&self) -> Option<Shard> {
        self.shard
    }

    /// Examples served per epoch: the dataset's size, or the shard's.
    pub fn len(&self) -> usize {
        let n = self.data.len();
        self.shard.map_or(n, |s| s.len(n))
    }

    /// Whether an epoch serves no example.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Builds batches on `workers` background threads (0: on the calling thread).
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Keeps up to `batches` ready batches queued ahead of the consumer (at least 1 per worker).
    pub fn with_prefetch(mut self, batches: usize) -> Self {
        self.prefetch = batches.max(1);
        self
    }

    /// Applies `transform` to every greyscale image, with the RNG of `(seed, epoch, index)`
    /// (the seed is the shuffle seed, 0 when not shuffling).
    pub fn with_transform(mut self, transform: Arc<dyn Transform<GrayImage>>) -> Self {
        self.gray = Some(transform);
        self
    }

    /// Applies `transform` to every RGB image, like [`DataLoader::with_transform`].
    pub fn with_rgb_transform(mut self, transform: Arc<dyn Transform<RgbImage>>) -> Self {
        self.rgb = Some(transform);
        self
    }

    /// Converts every image to `color` (grey images become RGB by copying the grey value to the
    /// three channels, RGB becomes grey by luminance) before the transforms run: what a model
    /// with 3 (or 1) input channels needs from a dataset of the other kind.
    pub fn with_color(mut self, color: ColorMode) -> Self {
        self.color = Some(color);
        self
    }

    /// Normalises every image channel `c` as `(x - mean[c]) / std[c]` after scaling pixels to
    /// `[0, 1]` (torchvision's `Normalize` after `ToTensor`); grey images use the first mean
    /// and std. Fails unless there is a finite mean and a finite, non-zero std per channel.
    pub fn with_normalization(mut self, mean: &[f32], std: &[f32]) -> Result<Self> {
        let invalid = |detail: String| Error::Invalid { what: "normalisation".into(), detail };
        if mean.is_empty() || mean.len() != std.len() {
            return Err(invalid(format!("{} means for {} standard deviations", mean.len(), std.len())));
        }
        if mean.iter().any(|m| !m.is_finite()) || std.iter().any(|s| !s.is_finite() || *s == 0.0) {
            return Err(invalid(format!("mean {mean:?} and std {std:?} must be finite, every std non-zero")));
        }
        let identity = mean.iter().all(|&m| m == 0.0) && std.iter().all(|&s| s == 1.0);
        self.normalization = (!identity)
            .then(|| Arc::new(Normalization { mean: mean.to_vec(), inv_std: std.iter().map(|s| 1.0 / s).collect() }));
        Ok(self)
    }

    /// The deterministic transforms of [`DataLoader::evaluation_view`] (e.g. resize and centre
    /// crop where training crops at random): one for grey images, one for RGB.
    pub fn with_eval_transforms(
        mut self,
        gray: Arc<dyn Transform<GrayImage>>,
        rgb: Arc<dyn Transform<RgbImage>>,
    ) -> Self {
        self.eval_gray = Some(gray);
        self.eval_rgb = Some(rgb);
        self
    }

    /// The same examples in order, without augmentation: the evaluation transforms (if set)
    /// replace the training ones, colour and normalisation stay, no shuffling, no dropped
    /// batch, built on the calling thread. What feature caching and statistics passes need.
    pub fn evaluation_view(&self) -> Self {
        Self {
            shuffle_seed: None,
            drop_last: false,
            workers: 0,
            gray: self.eval_gray.clone(),
            rgb: self.eval_rgb.clone(),
            ..self.clone()
        }
    }

    /// The dataset served.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.data
    }

    /// Examples per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Fails unless an epoch serves at least one batch: the batch size must be at least 1 and
    /// the dataset must hold at least one example (`what` names the data in the error:
    /// "training data", "test data").
    pub fn check(&self, what: &str) -> Result<()> {
        let invalid = |detail: String| Err(Error::Invalid { what: what.to_string(), detail });
        if self.batch_size == 0 {
            return invalid("batch size 0: a batch holds at least one example".into());
        }
        if self.data.is_empty() {
            return invalid("the dataset holds no examples".into());
        }
        if let Some(s) = self.shard.filter(|s| s.is_empty(self.data.len())) {
            return invalid(format!(
                "rank {} of {} gets no example of the {} in the dataset",
                s.rank,
                s.world,
                self.data.len()
            ));
        }
        if self.num_batches() == 0 {
            return invalid(format!(
                "{} examples make no full batch of {} (the last, partial batch is dropped)",
                self.len(),
                self.batch_size
            ));
        }
        Ok(())
    }

    /// Number of batches per epoch (0 for a batch size of 0); a shard's when sharded.
    pub fn num_batches(&self) -> usize {
        let n = self.len();
        if self.batch_size == 0 {
            0
        } else if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// Sample indices of `epoch`, in serving order (a sharded loader's: its share of the full
    /// permutation, see [`DataLoader::shard`]).
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.data.len()).collect();
        if let Some(seed) = self.shuffle_seed {
            // u64::MAX as the "index" keeps the shuffle stream apart from every sample's stream.
            order.shuffle(&mut sample_rng(seed, epoch, u64::MAX));
        }
        match self.shard {
            // The permutation depends on (seed, epoch) only, so every rank cuts the same one.
            Some(shard) if !order.is_empty() => shard.take(&order),
            _ => order,
        }
    }

    /// The batches of `epoch`, built on `device`. Dropping the iterator stops the workers.
    pub fn epoch(&self, epoch: u64, device: &Device) -> Batches {
        if self.batch_size == 0 {
            let error = Error::Invalid { what: "data loader".into(), detail: "batch size 0".into() };
            return Batches { source: Source::Failed(Some(error)), next: 0, total: 1 };
        }
        let order = Arc::new(self.order(epoch));
        let total = self.num_batches();
        if self.workers == 0 {
            return Batches {
                source: Source::Inline { loader: self.clone(), order, device: device.clone(), epoch },
                next: 0,
                total,
            };
        }
        let per_worker = self.prefetch.div_ceil(self.workers).max(1);
        let mut receivers = Vec::with_capacity(self.workers);
        let mut handles = Vec::with_capacity(self.workers);
        for w in 0..self.workers {
            let (tx, rx) = sync_channel(per_worker);
            let (loader, order, device) = (self.clone(), order.clone(), device.clone());
            let workers = self.workers;
            handles.push(std::thread::spawn(move || {
                for b in (w..total).step_by(workers) {
                    let batch = loader.batch_at(&order, b, epoch, &device);
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || failed {
                        return; // consumer gone, or this worker reported its error
                    }
                }
            }));
            receivers.push(rx);
        }
        Batches { source: Source::Workers { receivers, handles }, next: 0, total }
    }

    /// `(mean, 1 / std)` of channel `c` (the last given one for channels beyond it).
    fn channel_affine(&self, c: usize) -> (f32, f32) {
        match &self.normalization {
            Some(n) => {
                let c = c.min(n.mean.len() - 1);
                (n.mean[c], n.inv_std[c])
            }
            None => (0.0, 1.0),
        }
    }

    fn convert_color(&self, features: Features) -> Features {
        match (self.color, features) {
            (Some(ColorMode::Rgb), Features::Gray(g)) => Features::Rgb(DynamicImage::ImageLuma8(g).to_rgb8()),
            (Some(ColorMode::Gray), Features::Rgb(c)) => Features::Gray(DynamicImage::ImageRgb8(c).to_luma8()),
            (_, f) => f,
        }
    }

    fn batch_at(&self, order: &[usize], b: usize, epoch: u64, device: &Device) -> Result<Batch> {
        let end = ((b + 1) * self.batch_size).min(order.len());
        self.batch(&order[b * self.batch_size..end], epoch, device)
    }

    fn batch(&self, indices: &[usize], epoch: u64, device: &Device) -> Result<Batch> {
        let seed = self.shuffle_seed.unwrap_or(0);
        let mut values: Vec<f32> = Vec::new();
        let mut labels = Vec::with_capacity(indices.len());
        let mut shape: Option<Vec<usize>> = None;
        for &i in indices {
            let example = self.data.get(i)?;
            let example = Example { features: self.convert_color(example.features), label: example.label };
            let classes = self.data.classes();
            if example.label as usize >= classes {
                return Err(Error::Invalid {
                    what: "data loader".into(),
                    detail: format!(
                        "{} has label {}, outside the data's {classes} classes",
                        self.data.origin(i),
                        example.label
                    ),
                });
            }
            let mut rng = sample_rng(seed, epoch, i as u64);
            let start = values.len();
            let this_shape = match example.features {
                Features::Gray(img) => {
                    let img = match &self.gray {
                        Some(t) => t.apply(img, &mut rng)?,
                        None => img,
                    };
                    let (mean, inv_std) = self.channel_affine(0);
                    values.extend(img.as_raw().iter().map(|&p| (p as f32 / 255.0 - mean) * inv_std));
                    vec![1, img.height() as usize, img.width() as usize]
                }
                Features::Rgb(img) => {
                    let img = match &self.rgb {
                        Some(t) => t.apply(img, &mut rng)?,
                        None => img,
                    };
                    let (w, h) = (img.width() as usize, img.height() as usize);
                    // HWC u8 -> CHW f32, normalised in the same pass.
                    values.resize(start + 3 * h * w, 0.0);
                    let affine = [self.channel_affine(0), self.channel_affine(1), self.channel_affine(2)];
                    for (p, px) in img.pixels().enumerate() {
                        for (c, (mean, inv_std)) in affine.iter().enumerate() {
                            values[start + c * h * w + p] = (px.0[c] as f32 / 255.0 - mean) * inv_std;
                        }
                    }
                    vec![3, h, w]
                }
                Features::Vector(v) => {
                    values.extend_from_slice(&v);
                    vec![v.len()]
                }
            };
            match &shape {
                None => shape = Some(this_shape),
                Some(s) if *s != this_shape => {
                    return Err(Error::Invalid {
                        what: "data loader".into(),
                        detail: format!("example {i} has shape {this_shape:?} but the batch's first example has {s:?}; resize images to one size"),
                    })
                }
                Some(_) => {}
            }
            labels.push(example.label);
        }
        let mut dims = vec![indices.len()];
        dims.extend(shape.unwrap_or_default());
        Ok(Batch {
            images: Tensor::from_vec(values, dims, device)?,
            labels: Tensor::from_vec(labels, indices.len(), device)?,
        })
    }
}

enum Source {
    Inline {
        loader: DataLoader,
        order: Arc<Vec<usize>>,
        device: Device,
        epoch: u64,
    },
    Workers {
        receivers: Vec<Receiver<Result<Batch>>>,
        handles: Vec<JoinHandle<()>>,
    },
    /// An epoch that cannot start: its one item is the error.
    Failed(Option<Error>),
}

/// The batches of one epoch, in order (see [`DataLoader::epoch`]).
pub struct Batches {
    source: Source,
    next: usize,
    total: usize,
}

impl Iterator for Batches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.total {
            return None;
        }
        let b = self.next;
        self.next += 1;
        match &mut self.source {
            Source::Failed(error) => error.take().map(Err),
            Source::Inline { loader, order, device, epoch } => Some(loader.batch_at(order, b, *epoch, device)),
            Source::Workers { receivers, .. } => {
                let item = receivers[b % receivers.len()].recv().unwrap_or_else(|_| {
                    Err(Error::Invalid {
                        what: "data loader".into(),
                        detail: format!("worker for batch {b} stopped unexpectedly"),
                    })
                });
                if item.is_err() {
                    self.next = self.total; // an error ends the epoch
                }
                Some(item)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.total - self.next;
        (left, Some(left))
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        if let Source::Workers { receivers, handles } = &mut self.source {
            receivers.clear(); // wakes workers blocked on a full queue: their send fails
            for h in handles.drain(..) {
                let _ = h.join();
            }
        }
    }
}
