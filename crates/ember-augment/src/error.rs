//! The augmentation crate's error type.

/// What can go wrong while augmenting an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The requested crop does not fit in the (padded) image.
    #[error("random crop: crop {crop_w}x{crop_h} does not fit in the padded image {padded_w}x{padded_h}")]
    CropTooLarge {
        /// Crop width.
        crop_w: u32,
        /// Crop height.
        crop_h: u32,
        /// Padded image width.
        padded_w: u32,
        /// Padded image height.
        padded_h: u32,
    },
}

/// Result with the augmentation [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
