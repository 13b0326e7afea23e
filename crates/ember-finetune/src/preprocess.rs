//! Input preprocessing for pretrained models: the ImageNet evaluation recipe and grey-to-RGB
//! upscaling of small datasets.

use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use ember_augment::{CenterCrop, Resize, Transform};
use ember_data::{Dataset, Example, Features};
use image::{DynamicImage, RgbImage};
use rand::SeedableRng;

use crate::{Error, Result};

/// The evaluation preprocessing of an ImageNet classifier: resize the shorter side to
/// `resize` pixels (bilinear, antialiased), centre-crop `crop x crop`, scale to `[0, 1]`, then
/// `(x - mean) / std` per channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImagePreprocess {
    /// Target of the shorter side.
    pub resize: u32,
    /// Side of the centre crop.
    pub crop: u32,
    /// Per-channel mean subtracted after scaling to `[0, 1]`.
    pub mean: [f32; 3],
    /// Per-channel divisor.
    pub std: [f32; 3],
}

impl ImagePreprocess {
    /// EfficientNet-Lite's recipe: 256, crop 224, `(x - 0.5) / 0.5` (inputs in `[-1, 1]`).
    pub fn efficientnet_lite() -> Self {
        Self { resize: 256, crop: 224, mean: [0.5; 3], std: [0.5; 3] }
    }

    /// The `(3, crop, crop)` tensor of `image`.
    pub fn apply(&self, image: &RgbImage) -> Result<Tensor> {
        let (w, h) = image.dimensions();
        // torchvision's Resize(int): the shorter side becomes `resize`, the longer one is scaled
        // and truncated.
        let (nw, nh) = if w <= h {
            (self.resize, (self.resize as u64 * h as u64 / w.max(1) as u64) as u32)
        } else {
            ((self.resize as u64 * w as u64 / h.max(1) as u64) as u32, self.resize)
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let resized = Resize::new(nw, nh)?.apply(image.clone(), &mut rng)?;
        let cropped = CenterCrop::new(self.crop, self.crop)?.apply(resized, &mut rng)?;
        let (cw, ch) = (cropped.width() as usize, cropped.height() as usize);
        let mut values = vec![0f32; 3 * cw * ch];
        for (p, px) in cropped.pixels().enumerate() {
            for c in 0..3 {
                values[c * cw * ch + p] = (px.0[c] as f32 / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        Ok(Tensor::from_vec(values, (3, ch, cw), &Device::Cpu)?)
    }

    /// Reads the image file at `path` (PNG, JPEG, BMP, WebP) and [`ImagePreprocess::apply`]s it.
    pub fn load(&self, path: &Path) -> Result<Tensor> {
        let image = image::open(path).map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))?;
        self.apply(&DynamicImage::to_rgb8(&image))
    }
}

/// A greyscale dataset served as RGB images of `size x size` (the grey value copied to the three
/// channels, bilinear upscaling): what an ImageNet-pretrained network expects from MNIST-style
/// data. Non-image examples are an error.
#[derive(Clone)]
pub struct GreyToRgb {
    inner: Arc<dyn Dataset>,
    resize: Resize,
}

impl std::fmt::Debug for GreyToRgb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GreyToRgb").field("len", &self.inner.len()).field("resize", &self.resize).finish()
    }
}

impl GreyToRgb {
    /// `inner` as `size x size` RGB.
    pub fn new(inner: Arc<dyn Dataset>, size: u32) -> Result<Self> {
        Ok(Self { inner, resize: Resize::new(size, size)? })
    }
}

impl Dataset for GreyToRgb {
    fn len(&self) -> usize {
        self.inner.len()
    }

    fn get(&self, index: usize) -> ember_data::Result<Example> {
        let example = self.inner.get(index)?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let rgb = match example.features {
            Features::Gray(g) => DynamicImage::ImageLuma8(g).to_rgb8(),
            Features::Rgb(c) => c,
            Features::Vector(_) => {
                return Err(ember_data::Error::Invalid {
                    what: "grey to RGB".into(),
                    detail: format!("example {index} is a vector, not an image"),
                })
            }
        };
        let resized = self.resize.apply(rgb, &mut rng).map_err(|e| ember_data::Error::Invalid {
            what: "grey to RGB".into(),
            detail: format!("example {index}: {e}"),
        })?;
        Ok(Example { features: Features::Rgb(resized), label: example.label })
    }

    fn classes(&self) -> usize {
        self.inner.classes()
    }

    fn label(&self, index: usize) -> ember_data::Result<u32> {
        self.inner.label(index)
    }
}
