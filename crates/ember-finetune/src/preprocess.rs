//! Input preprocessing for pretrained models: the ImageNet evaluation recipe and grey-to-RGB
//! upscaling of small datasets.

use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use ember_augment::{shorter_side_resized, CenterCrop, Resize, Transform};
use ember_data::{Dataset, Example, Features};
use image::{DynamicImage, RgbImage};
use rand::SeedableRng;

use crate::{Error, Result};

/// The largest `resize` or `crop` [`ImagePreprocess`] accepts.
pub const MAX_PREPROCESS_SIDE: u32 = 4096;

/// The most pixels an image may have after its shorter side is resized ([`ImagePreprocess`]).
pub const MAX_RESIZED_PIXELS: u64 = 1 << 26;

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

    /// Fails unless `resize` and `crop` lie in `1..=`[`MAX_PREPROCESS_SIDE`].
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("resize", self.resize), ("crop", self.crop)] {
            if v == 0 || v > MAX_PREPROCESS_SIDE {
                return Err(Error::invalid(
                    "image preprocessing",
                    format!("{name} {v} is outside 1..={MAX_PREPROCESS_SIDE} pixels"),
                ));
            }
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s != 0.0)) || self.mean.iter().any(|m| !m.is_finite()) {
            return Err(Error::invalid(
                "image preprocessing",
                format!("mean {:?} and std {:?} must be finite, std non-zero", self.mean, self.std),
            ));
        }
        Ok(())
    }

    /// The `(3, crop, crop)` tensor of `image`. Fails on settings outside the limits
    /// ([`ImagePreprocess::validate`]) and on images so elongated that resizing their shorter
    /// side would make more than [`MAX_RESIZED_PIXELS`] pixels (a 20000x1 strip resized to 256
    /// would be 1.3 gigapixels).
    pub fn apply(&self, image: &RgbImage) -> Result<Tensor> {
        self.validate()?;
        let (w, h) = image.dimensions();
        if w == 0 || h == 0 {
            return Err(Error::invalid("image preprocessing", format!("a {w}x{h} image has no pixels")));
        }
        // torchvision's Resize(int): the shorter side becomes `resize`, the longer one is scaled
        // and truncated.
        let (nw, nh) = shorter_side_resized(w, h, self.resize);
        if nw.saturating_mul(nh) > MAX_RESIZED_PIXELS {
            return Err(Error::invalid(
                "image preprocessing",
                format!(
                    "a {w}x{h} image resized to {nw}x{nh} would exceed {MAX_RESIZED_PIXELS} pixels; \
                     crop it closer to a square first"
                ),
            ));
        }
        let (nw, nh) = (nw as u32, nh as u32); // below MAX_RESIZED_PIXELS, so in range
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

    /// Reads the image file at `path` (PNG, JPEG, BMP, WebP) through ember-data's limited
    /// decoder (`ember_data::read_image`: bounded dimensions and allocations, truncation is an
    /// error) and [`ImagePreprocess::apply`]s it; errors name the file.
    pub fn load(&self, path: &Path) -> Result<Tensor> {
        let image = ember_data::read_image(path)?;
        self.apply(&DynamicImage::to_rgb8(&image))
            .map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))
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
