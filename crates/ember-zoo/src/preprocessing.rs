//! The input preprocessing a model's weights expect, like timm's `pretrained_cfg`: how an image
//! becomes the tensor the model was trained on.

use serde::{Deserialize, Serialize};

/// ImageNet's per-channel mean (RGB, on `[0, 1]` pixels): torchvision's and timm's ResNets.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// How images are resampled when resized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resampling {
    /// Bilinear (torchvision's default).
    Bilinear,
    /// Bicubic.
    Bicubic,
}

/// Input preprocessing: pixels scaled to `[0, 1]`, then `(x - mean[c]) / std[c]` per channel;
/// at evaluation the shorter side is resized to `side / crop_pct` and the centre `side x side`
/// is cropped (timm's `crop_pct`; 0.875 is torchvision's resize 256, crop 224).
///
/// Grey (1-channel) inputs use the first mean and std.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// Per-channel mean subtracted from `[0, 1]` pixels.
    pub mean: [f32; 3],
    /// Per-channel divisor.
    pub std: [f32; 3],
    /// Fraction of the resized image kept by the evaluation centre crop, in `(0, 1]`.
    pub crop_pct: f32,
    /// Resampling of resizes.
    pub interpolation: Resampling,
}

impl Preprocessing {
    /// ImageNet statistics, crop 0.875, bilinear: torchvision's ResNet weights.
    pub const IMAGENET: Self =
        Self { mean: IMAGENET_MEAN, std: IMAGENET_STD, crop_pct: 0.875, interpolation: Resampling::Bilinear };

    /// `(x - 0.5) / 0.5` (inputs in `[-1, 1]`), crop 0.875, bilinear: the EfficientNet-Lite
    /// weights (the TF release and its PyTorch ports; the shared reference logits use it).
    pub const INCEPTION: Self =
        Self { mean: [0.5; 3], std: [0.5; 3], crop_pct: 0.875, interpolation: Resampling::Bilinear };

    /// Pixels in `[0, 1]` as they are, no crop: models ember trains from scratch on small images
    /// (the MNIST recipes).
    pub const UNIT: Self = Self { mean: [0.0; 3], std: [1.0; 3], crop_pct: 1.0, interpolation: Resampling::Bilinear };

    /// The first `channels` means (grey: the first; more than 3: the last repeated).
    pub fn mean_for(&self, channels: usize) -> Vec<f32> {
        (0..channels).map(|c| self.mean[c.min(2)]).collect()
    }

    /// The first `channels` standard deviations, like [`Preprocessing::mean_for`].
    pub fn std_for(&self, channels: usize) -> Vec<f32> {
        (0..channels).map(|c| self.std[c.min(2)]).collect()
    }

    /// Whether the normalisation changes nothing (mean 0, std 1).
    pub fn is_identity(&self) -> bool {
        self.mean == [0.0; 3] && self.std == [1.0; 3]
    }

    /// The side the shorter image side is resized to before a centre crop of `side`:
    /// `floor(side / crop_pct)`, as timm computes it.
    pub fn resize_for(&self, side: u32) -> u32 {
        ((side as f64 / self.crop_pct as f64).floor() as u32).max(side)
    }

    /// Fails naming the first value that cannot work: non-finite means, zero or non-finite
    /// standard deviations, a crop fraction outside `(0, 1]`.
    pub fn validate(&self) -> Result<(), String> {
        if self.mean.iter().any(|m| !m.is_finite()) {
            return Err(format!("mean {:?} must be finite", self.mean));
        }
        if self.std.iter().any(|s| !s.is_finite() || *s == 0.0) {
            return Err(format!("std {:?} must be finite and non-zero", self.std));
        }
        if !(self.crop_pct > 0.0 && self.crop_pct <= 1.0) {
            return Err(format!("crop_pct {} must lie in (0, 1]", self.crop_pct));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchvision_resize_256_crop_224() {
        assert_eq!(Preprocessing::IMAGENET.resize_for(224), 256);
        assert_eq!(Preprocessing::UNIT.resize_for(28), 28);
        assert_eq!(Preprocessing::IMAGENET.mean_for(1), vec![0.485]);
        assert!(Preprocessing::UNIT.is_identity() && !Preprocessing::INCEPTION.is_identity());
        assert!(Preprocessing { crop_pct: 0.0, ..Preprocessing::UNIT }.validate().is_err());
        assert!(Preprocessing { std: [1.0, 0.0, 1.0], ..Preprocessing::UNIT }.validate().is_err());
    }
}
