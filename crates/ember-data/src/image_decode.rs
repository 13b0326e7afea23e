//! Decoding untrusted image files: size limits before any pixel buffer exists, and a truncated
//! or corrupt file is an error naming it instead of a silently grey image.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use crate::{Error, Result};

/// The widest or tallest image [`decode_image`] accepts, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// The most pixels (width x height) [`decode_image`] accepts: 64 Mi, so the RGBA `f32` copy a
/// pipeline may make stays within 1 GiB.
pub const MAX_IMAGE_PIXELS: u64 = 64 * 1024 * 1024;

/// The most memory the decoder may allocate for one image.
pub const MAX_DECODE_ALLOC: u64 = 512 * 1024 * 1024;

/// Decodes a PNG, JPEG, BMP or WebP image held in memory; `origin` (the file it came from) names
/// it in errors. The format is detected from the content.
///
/// Untrusted input is fine: the header's size is checked against [`MAX_IMAGE_SIDE`] and
/// [`MAX_IMAGE_PIXELS`] before anything is decoded ([`Error::ImageTooLarge`]), the decoder may
/// allocate at most [`MAX_DECODE_ALLOC`], and a corrupt or truncated file (including a JPEG that
/// ends before its end-of-image marker, which decoders otherwise fill with grey) is an
/// [`Error::Decode`] naming `origin`.
///
/// ```
/// use std::path::Path;
///
/// let mut png = Vec::new();
/// image::GrayImage::from_pixel(3, 2, image::Luma([7]))
///     .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
/// let img = ember_data::decode_image(&png, Path::new("digit.png"))?;
/// assert_eq!((img.width(), img.height()), (3, 2));
///
/// let err = ember_data::decode_image(&png[..png.len() / 2], Path::new("digit.png")).unwrap_err();
/// assert!(err.to_string().starts_with("digit.png: "));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode_image(bytes: &[u8], origin: &Path) -> Result<DynamicImage> {
    let fail = |reason: String| Error::Decode { path: origin.to_path_buf(), reason };
    let reader = |limits: Limits| -> Result<ImageReader<Cursor<&[u8]>>> {
        let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| fail(e.to_string()))?;
        reader.limits(limits);
        Ok(reader)
    };
    let mut header_limits = Limits::no_limits();
    header_limits.max_alloc = Some(MAX_DECODE_ALLOC);
    let probe = reader(header_limits)?;
    let format = probe.format().ok_or_else(|| fail("not a PNG, JPEG, BMP or WebP image".into()))?;
    let (width, height) = probe.into_dimensions().map_err(|e| fail(e.to_string()))?;
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE || u64::from(width) * u64::from(height) > MAX_IMAGE_PIXELS {
        return Err(Error::ImageTooLarge {
            path: origin.to_path_buf(),
            width,
            height,
            max_side: MAX_IMAGE_SIDE,
            max_pixels: MAX_IMAGE_PIXELS,
        });
    }
    if format == ImageFormat::Jpeg && !jpeg_has_end_marker(bytes) {
        return Err(fail("truncated JPEG: no end-of-image marker after the image data".into()));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader(limits)?.decode().map_err(|e| fail(e.to_string()))
}

/// Reads `path` and decodes it with [`decode_image`].
pub fn read_image(path: &Path) -> Result<DynamicImage> {
    let bytes =
        std::fs::read(path).map_err(|source| Error::Io(ember_io::IoError { path: path.to_path_buf(), source }))?;
    decode_image(&bytes, path)
}

/// Whether an end-of-image marker (`FF D9`) follows the last start-of-scan marker (`FF DA`).
/// Entropy-coded data never holds `FF D9` (a data `FF` is stuffed as `FF 00`), so a JPEG cut
/// anywhere inside its scans has none.
fn jpeg_has_end_marker(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xff, marker]);
    match (last(0xda), last(0xd9)) {
        (Some(sos), Some(eoi)) => eoi > sos,
        (None, Some(_)) => true,
        (_, None) => false,
    }
}
