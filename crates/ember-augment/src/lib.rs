//! Seeded, reproducible data augmentation on `image` buffers.
//!
//! A [`Transform`] receives the RNG it draws from, so a sample's augmentation depends only on
//! `(seed, epoch, index)` ([`sample_rng`]) and replays exactly, whatever the number of loader
//! threads. Transforms work on any `image::ImageBuffer` (grey or RGB, u8 or f32).
//!
//! ```
//! use ember_augment::{sample_rng, RandomCrop, Transform};
//! use image::GrayImage;
//!
//! let digit = GrayImage::from_pixel(28, 28, image::Luma([255]));
//! let crop = RandomCrop::new(28, 28).with_padding(2);
//! let shifted = crop.apply(digit.clone(), &mut sample_rng(7, 0, 42))?;
//! assert_eq!(shifted.dimensions(), (28, 28));
//! // Same (seed, epoch, index): the same output.
//! assert_eq!(shifted, crop.apply(digit, &mut sample_rng(7, 0, 42))?);
//! # Ok::<(), ember_augment::Error>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod error;
mod random_crop;
mod rng;
mod transform;

pub use error::{Error, Result};
pub use random_crop::RandomCrop;
pub use rng::sample_rng;
pub use transform::Transform;
