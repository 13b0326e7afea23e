//! The augmentation crate's error type.

/// What can go wrong while building or applying an augmentation.
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
    /// A transform was given a parameter outside its valid range.
    #[error("{transform}: {parameter} = {value} is invalid (expected {expected})")]
    InvalidParameter {
        /// The transform, as the pipeline vocabulary names it (`gaussian blur`, `normalize`, ...).
        transform: &'static str,
        /// The parameter's name.
        parameter: &'static str,
        /// The rejected value, as given.
        value: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// An image is too small (or empty) for a transform.
    #[error("{transform}: image {width}x{height} is too small (needs {needs})")]
    ImageTooSmall {
        /// The transform.
        transform: &'static str,
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
        /// What the transform needs.
        needs: &'static str,
    },
    /// A pipeline string has a token that is not a valid op.
    #[error("pipeline: bad op `{token}`: {reason}")]
    BadOp {
        /// The offending token, as written.
        token: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A tensor operation failed (batch-level transforms, [`ToTensor`](crate::ToTensor)).
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

impl Error {
    /// An [`Error::InvalidParameter`].
    pub(crate) fn invalid(
        transform: &'static str,
        parameter: &'static str,
        value: impl std::fmt::Display,
        expected: &'static str,
    ) -> Self {
        Self::InvalidParameter { transform, parameter, value: value.to_string(), expected }
    }
}

/// Result with the augmentation [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// `Ok(p)` when `p` is a probability.
pub(crate) fn check_probability(transform: &'static str, p: f64) -> Result<f64> {
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(Error::invalid(transform, "p", p, "a probability in [0, 1]"))
    }
}

/// `Ok(value)` when `value` is finite and at least 0.
pub(crate) fn check_non_negative<T: Into<f64> + Copy + std::fmt::Display>(
    transform: &'static str,
    parameter: &'static str,
    value: T,
) -> Result<T> {
    let v: f64 = value.into();
    if v >= 0.0 && v.is_finite() {
        Ok(value)
    } else {
        Err(Error::invalid(transform, parameter, value, "a finite number >= 0"))
    }
}

/// `Ok(())` when an output size of `width x height` has both sides positive.
pub(crate) fn check_size(transform: &'static str, width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::invalid(transform, "size", format!("{width}x{height}"), "a positive size"));
    }
    Ok(())
}

/// `Ok(())` when a `width x height` input image has pixels.
pub(crate) fn check_non_empty(transform: &'static str, width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::ImageTooSmall { transform, width, height, needs: "a non-empty image" });
    }
    Ok(())
}

/// `Ok(range)` when `low <= high` and both are finite and at least `min`.
pub(crate) fn check_range(
    transform: &'static str,
    parameter: &'static str,
    (low, high): (f64, f64),
    min: f64,
) -> Result<(f64, f64)> {
    if low.is_finite() && high.is_finite() && low >= min && low <= high {
        Ok((low, high))
    } else {
        Err(Error::invalid(
            transform,
            parameter,
            format!("({low}, {high})"),
            "a finite range low <= high within bounds",
        ))
    }
}
