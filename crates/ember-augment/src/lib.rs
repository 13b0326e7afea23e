//! Seeded, reproducible data augmentation on `image` buffers, and batch-level mixing on candle
//! tensors.
//!
//! A [`Transform`] receives the RNG it draws from, so a sample's augmentation depends only on
//! `(seed, epoch, index)` ([`sample_rng`]) and replays exactly, whatever the number of loader
//! threads. Transforms work on any `image::ImageBuffer` of `u8` or `f32` values (grey or RGB),
//! follow torchvision's definitions (the deterministic ones match torchvision v2 on committed
//! fixtures), and work on raw buffers without per-pixel allocation.
//!
//! - geometry: [`Resize`], [`CenterCrop`], [`RandomCrop`] (zero/edge/reflect/symmetric padding),
//!   [`RandomResizedCrop`], [`RandomHorizontalFlip`], [`RandomVerticalFlip`], [`Affine`],
//!   [`RandomAffine`], [`RandomRotation`];
//! - colour: [`ColorJitter`], [`RandomGrayscale`], [`GaussianBlur`];
//! - noise and occlusion: [`GaussianNoise`], [`SaltAndPepper`], [`RandomErasing`], [`Cutout`];
//! - composition: [`Compose`], [`RandomApply`], [`RandomChoice`], [`TrivialAugmentWide`], and
//!   [`Pipeline`], parsed from text such as `"pad-crop:4,hflip,noise:0.1"`;
//! - to the model: [`Normalize`], [`ToTensor`]; batch-level [`MixUp`], [`CutMix`],
//!   [`add_gaussian_noise`].
//!
//! ```
//! use ember_augment::{sample_rng, Pipeline, RandomCrop, Transform};
//! use image::GrayImage;
//!
//! let digit = GrayImage::from_pixel(28, 28, image::Luma([255]));
//! let crop = RandomCrop::new(28, 28).with_padding(2);
//! let shifted = crop.apply(digit.clone(), &mut sample_rng(7, 0, 42))?;
//! assert_eq!(shifted.dimensions(), (28, 28));
//! // Same (seed, epoch, index): the same output.
//! assert_eq!(shifted, crop.apply(digit.clone(), &mut sample_rng(7, 0, 42))?);
//!
//! // The same, and more, from text.
//! let pipeline = Pipeline::parse("pad-crop:2,hflip,noise:0.1")?;
//! let augmented = pipeline.apply(digit, &mut sample_rng(7, 0, 42))?;
//! assert_eq!(augmented.dimensions(), (28, 28));
//! assert!(Pipeline::parse("pad-crop:2,wobble").is_err());
//! # Ok::<(), ember_augment::Error>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod adjust;
mod affine;
mod batch_noise;
mod center_crop;
mod color_jitter;
mod compose;
mod erasing;
mod error;
mod field_setters;
mod flip;
mod gaussian_blur;
mod mix;
mod noise;
mod normalize;
mod pipeline;
mod random_crop;
mod random_resized_crop;
mod resize;
mod rng;
mod sample;
mod to_tensor;
mod transform;
mod trivial_augment;
mod window;

pub use affine::{Affine, RandomAffine, RandomRotation};
pub use batch_noise::add_gaussian_noise;
pub use center_crop::CenterCrop;
pub use color_jitter::{ColorJitter, RandomGrayscale};
pub use compose::{Compose, RandomApply, RandomChoice};
pub use erasing::{Cutout, RandomErasing};
pub use error::{Error, Result};
pub use flip::{flip_horizontal_in_place, flip_vertical_in_place, RandomHorizontalFlip, RandomVerticalFlip};
pub use gaussian_blur::GaussianBlur;
pub use mix::{CutMix, MixUp};
pub use noise::{GaussianNoise, SaltAndPepper};
pub use normalize::Normalize;
pub use pipeline::{Pipeline, OP_NAMES};
pub use random_crop::RandomCrop;
pub use random_resized_crop::RandomResizedCrop;
pub use resize::{shorter_side_resized, Interpolation, Resize, ResizeShorter, MAX_RESIZED_PIXELS};
pub use rng::sample_rng;
pub use sample::{Image, Sample, SamplePixel};
pub use to_tensor::ToTensor;
pub use transform::Transform;
pub use trivial_augment::TrivialAugmentWide;
pub use window::PaddingMode;
