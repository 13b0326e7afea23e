//! The dataset trait every source implements.

use std::sync::Arc;

use image::{GrayImage, RgbImage};

use crate::{Error, Result};

/// The input part of one example.
#[derive(Debug, Clone, PartialEq)]
pub enum Features {
    /// A greyscale image.
    Gray(GrayImage),
    /// An RGB image.
    Rgb(RgbImage),
    /// A vector of numbers (tabular data).
    Vector(Vec<f32>),
}

/// One labelled example.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The input.
    pub features: Features,
    /// The class index.
    pub label: u32,
}

/// A finite, indexable collection of labelled examples.
///
/// `get` fails only on IO or decoding problems (a file that cannot be read), never on a valid
/// index; indices `>= len()` are a caller error and are reported as [`Error::Invalid`].
pub trait Dataset: Send + Sync {
    /// Number of examples.
    fn len(&self) -> usize;

    /// Whether there are no examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Example `index`.
    fn get(&self, index: usize) -> Result<Example>;

    /// Number of classes (labels are below it).
    fn classes(&self) -> usize;

    /// The label of example `index`, without decoding its input where the source allows it.
    fn label(&self, index: usize) -> Result<u32> {
        Ok(self.get(index)?.label)
    }

    /// Where example `index` comes from, for error messages: its file for file-backed sources,
    /// else `example {index}`.
    fn origin(&self, index: usize) -> String {
        format!("example {index}")
    }
}

/// Error for an index past the end of a dataset of `len` examples.
pub(crate) fn out_of_range(what: &str, index: usize, len: usize) -> Error {
    Error::Invalid { what: what.to_string(), detail: format!("index {index} out of range for {len} examples") }
}

/// The examples of `inner` at `indices`, in that order (a split, a fold, a few-shot subset).
#[derive(Clone)]
pub struct Subset {
    inner: Arc<dyn Dataset>,
    indices: Arc<Vec<usize>>,
}

impl std::fmt::Debug for Subset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subset").field("len", &self.indices.len()).field("of", &self.inner.len()).finish()
    }
}

impl Subset {
    /// A view of `inner` restricted to `indices`; fails if an index is out of range.
    pub fn new(inner: Arc<dyn Dataset>, indices: Vec<usize>) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= inner.len()) {
            return Err(out_of_range("subset", bad, inner.len()));
        }
        Ok(Self { inner, indices: Arc::new(indices) })
    }

    /// The indices into the underlying dataset.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }
}

impl Dataset for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn get(&self, index: usize) -> Result<Example> {
        let i = *self.indices.get(index).ok_or_else(|| out_of_range("subset", index, self.indices.len()))?;
        self.inner.get(i)
    }

    fn classes(&self) -> usize {
        self.inner.classes()
    }

    fn label(&self, index: usize) -> Result<u32> {
        let i = *self.indices.get(index).ok_or_else(|| out_of_range("subset", index, self.indices.len()))?;
        self.inner.label(i)
    }

    fn origin(&self, index: usize) -> String {
        match self.indices.get(index) {
            Some(&i) => self.inner.origin(i),
            None => format!("example {index} (out of range)"),
        }
    }
}
