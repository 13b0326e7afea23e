//! Batch-level mixing with soft labels: mixup (Zhang et al., 2018, "mixup: Beyond Empirical
//! Risk Minimization") and cutmix (Yun et al., 2019, "CutMix"), as torchvision v2's `MixUp` and
//! `CutMix`: each image is mixed with its neighbour in the batch (the batch rolled by one).

use candle_core::{DType, Tensor};
use rand::rngs::StdRng;
use rand::Rng;

use crate::rng::beta;
use crate::{Error, Result};

/// Mixes whole images: `lam * x + (1 - lam) * x.roll(1)`, `lam ~ Beta(alpha, alpha)`, and the
/// labels alike.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixUp {
    alpha: f64,
    classes: usize,
}

/// Pastes a box of the rolled batch into each image; the box covers about `1 - lam` of the area,
/// `lam ~ Beta(alpha, alpha)`, and the labels mix by the box's true area.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CutMix {
    alpha: f64,
    classes: usize,
}

fn check(transform: &'static str, alpha: f64, classes: usize) -> Result<()> {
    if !(alpha > 0.0 && alpha.is_finite()) {
        return Err(Error::invalid(transform, "alpha", alpha, "a finite number > 0"));
    }
    if classes == 0 {
        return Err(Error::invalid(transform, "classes", classes, "at least one class"));
    }
    Ok(())
}

/// Labels as `(b, classes)` `f32` probabilities: class indices `(b,)` become one-hot rows, soft
/// labels `(b, classes)` pass through.
fn soft_labels(transform: &'static str, labels: &Tensor, classes: usize) -> Result<Tensor> {
    match labels.dims() {
        [b] => {
            let indices: Vec<u32> = labels.to_dtype(DType::U32)?.to_vec1()?;
            let mut one_hot = vec![0f32; b * classes];
            for (row, &i) in indices.iter().enumerate() {
                if i as usize >= classes {
                    return Err(Error::invalid(transform, "label", i, "a class index below the number of classes"));
                }
                one_hot[row * classes + i as usize] = 1.0;
            }
            Ok(Tensor::from_vec(one_hot, (*b, classes), labels.device())?)
        }
        [_, k] if *k == classes => Ok(labels.to_dtype(DType::F32)?),
        dims => Err(Error::invalid(transform, "labels shape", format!("{dims:?}"), "(b,) indices or (b, classes)")),
    }
}

impl MixUp {
    /// Beta parameter `alpha > 0` (1 is uniform) and the number of classes.
    pub fn new(alpha: f64, classes: usize) -> Result<Self> {
        check("mixup", alpha, classes)?;
        Ok(Self { alpha, classes })
    }

    /// Mixes a batch.
    ///
    /// # Shapes
    /// - images: `(b, ...)`, float
    /// - labels: `(b,)` class indices or `(b, classes)` probabilities
    /// - output: images as given, labels `(b, classes)` `f32`
    pub fn apply(&self, images: &Tensor, labels: &Tensor, rng: &mut StdRng) -> Result<(Tensor, Tensor)> {
        let soft = soft_labels("mixup", labels, self.classes)?;
        let lam = beta(rng, self.alpha, self.alpha);
        let mixed = (images.affine(lam, 0.0)? + images.roll(1, 0)?.affine(1.0 - lam, 0.0)?)?;
        let labels = (soft.affine(lam, 0.0)? + soft.roll(1, 0)?.affine(1.0 - lam, 0.0)?)?;
        Ok((mixed, labels))
    }
}

impl CutMix {
    /// Beta parameter `alpha > 0` (1 is uniform) and the number of classes.
    pub fn new(alpha: f64, classes: usize) -> Result<Self> {
        check("cutmix", alpha, classes)?;
        Ok(Self { alpha, classes })
    }

    /// Mixes a batch.
    ///
    /// # Shapes
    /// - images: `(b, c, h, w)`, float
    /// - labels: `(b,)` class indices or `(b, classes)` probabilities
    /// - output: images as given, labels `(b, classes)` `f32`
    pub fn apply(&self, images: &Tensor, labels: &Tensor, rng: &mut StdRng) -> Result<(Tensor, Tensor)> {
        let (_, _, h, w) = images.dims4()?;
        let soft = soft_labels("cutmix", labels, self.classes)?;
        let lam = beta(rng, self.alpha, self.alpha);
        let (cx, cy) = (rng.random_range(0..w) as i64, rng.random_range(0..h) as i64);
        let r = 0.5 * (1.0 - lam).sqrt();
        let (half_w, half_h) = ((r * w as f64) as i64, (r * h as f64) as i64);
        let (x0, x1) = ((cx - half_w).max(0) as usize, (cx + half_w).min(w as i64) as usize);
        let (y0, y1) = ((cy - half_h).max(0) as usize, (cy + half_h).min(h as i64) as usize);
        let mut mask = vec![0f32; h * w];
        for y in y0..y1 {
            mask[y * w + x0..y * w + x1].fill(1.0);
        }
        let mask = Tensor::from_vec(mask, (1, 1, h, w), images.device())?.to_dtype(images.dtype())?;
        let keep = mask.affine(-1.0, 1.0)?;
        let mixed = (images.broadcast_mul(&keep)? + images.roll(1, 0)?.broadcast_mul(&mask)?)?;
        let lam = 1.0 - ((x1 - x0) * (y1 - y0)) as f64 / (w * h) as f64;
        let labels = (soft.affine(lam, 0.0)? + soft.roll(1, 0)?.affine(1.0 - lam, 0.0)?)?;
        Ok((mixed, labels))
    }
}
