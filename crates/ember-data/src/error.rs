//! The data crate's error type.

use std::path::PathBuf;

/// What can go wrong while reading or serving data. Every variant about a file names it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the file failed (including a corrupt gzip stream).
    #[error(transparent)]
    Io(#[from] ember_io::IoError),
    /// Neither the raw nor the gzip-compressed file exists.
    #[error("{dir}: no {file} (or {file}.gz) in this directory")]
    MissingFile {
        /// Directory searched.
        dir: PathBuf,
        /// File name looked for.
        file: String,
    },
    /// The first four bytes are not the IDX magic number expected.
    #[error("{path}: not an IDX {what} file (magic {found:#010x}, expected {expected:#010x})")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// "images" or "labels".
        what: &'static str,
        /// Magic number found.
        found: u32,
        /// Magic number expected.
        expected: u32,
    },
    /// The file ends inside the IDX header.
    #[error("{path}: truncated: the file ends inside the {header_len}-byte IDX header")]
    TruncatedHeader {
        /// The file.
        path: PathBuf,
        /// Header length in bytes.
        header_len: usize,
    },
    /// The header's dimensions are impossible (zero-sized images, overflowing sizes).
    #[error("{path}: implausible IDX dimensions {dims:?}")]
    BadDimensions {
        /// The file.
        path: PathBuf,
        /// Dimensions read from the header.
        dims: Vec<u64>,
    },
    /// The file holds fewer data bytes than its header promises.
    #[error("{path}: truncated: the header promises {expected} data bytes but the file holds {found}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The header promises more data than any IDX file ember reads may hold.
    #[error("{path}: the IDX header promises {expected} data bytes, over the limit of {limit}")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises.
        expected: u64,
        /// The most bytes accepted ([`crate::MAX_IDX_BYTES`]).
        limit: u64,
    },
    /// The file holds more data bytes than its header promises.
    #[error("{path}: {extra} unexpected bytes after the {expected} data bytes the header promises")]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises.
        expected: u64,
        /// Bytes beyond that.
        extra: u64,
    },
    /// Image and label files disagree on the number of samples.
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        /// The images file.
        images: PathBuf,
        /// The labels file.
        labels: PathBuf,
        /// Number of images.
        n_images: usize,
        /// Number of labels.
        n_labels: usize,
    },
    /// A label is not a valid class index.
    #[error("{path}: label {label} at index {index} is out of range for {classes} classes")]
    LabelOutOfRange {
        /// The labels file.
        path: PathBuf,
        /// Sample index.
        index: usize,
        /// The label found.
        label: u8,
        /// Number of classes.
        classes: usize,
    },
    /// A dataset name ember does not know.
    #[error("unknown dataset `{name}` (known: {known})")]
    UnknownDataset {
        /// The name given.
        name: String,
        /// Known names, comma-separated.
        known: String,
    },
    /// An image file could not be decoded.
    #[error("{path}: cannot decode image: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// An image's header claims more pixels than [`crate::decode_image`] accepts.
    #[error("{path}: image is {width}x{height} pixels, over the limit of {max_side} per side and {max_pixels} in all")]
    ImageTooLarge {
        /// The file.
        path: PathBuf,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The most pixels a side may have.
        max_side: u32,
        /// The most pixels an image may have.
        max_pixels: u64,
    },
    /// A CSV file has a malformed line.
    #[error("{path}:{line}: {detail}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// A download failed (network, HTTP status, interrupted transfer).
    #[error("downloading {url}: {reason}")]
    Download {
        /// The address.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A downloaded file does not have the expected SHA-256 checksum; it was deleted.
    #[error("{url}: SHA-256 {found} does not match the expected {expected}; the file was deleted")]
    ChecksumMismatch {
        /// The address.
        url: String,
        /// Expected checksum (hex).
        expected: String,
        /// Checksum of what arrived (hex).
        found: String,
    },
    /// A known dataset was not found in any of the places searched (and not downloaded).
    #[error("dataset `{dataset}` not found; looked in {tried}{download}. Place its files ({files}) in one of those directories, or pass --data-dir DIR")]
    DatasetNotFound {
        /// The dataset.
        dataset: String,
        /// Directories searched, comma-separated.
        tried: String,
        /// The files expected.
        files: String,
        /// Why no download happened (starts with "; " when present).
        download: String,
    },
    /// The file is well formed but holds no examples: nothing to train or evaluate on.
    #[error("{path}: the file holds no examples")]
    EmptyDataset {
        /// The file.
        path: PathBuf,
    },
    /// A dataset's images do not match what the caller needs.
    #[error("{what}: {detail}")]
    Invalid {
        /// What was being built.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// Augmentation failed.
    #[error(transparent)]
    Augment(#[from] ember_augment::Error),
    /// Building a tensor failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// Result with the data [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
