//! An in-memory set of labelled greyscale images.

use image::GrayImage;

use crate::{Error, Result};

/// `len` greyscale images of `height x width` u8 pixels with a class label each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledImages {
    pixels: Vec<u8>,
    labels: Vec<u8>,
    height: usize,
    width: usize,
    classes: usize,
}

impl LabelledImages {
    /// Builds a set from row-major pixels (`labels.len() * height * width` bytes) and labels
    /// that must all be below `classes`.
    pub fn new(pixels: Vec<u8>, labels: Vec<u8>, height: usize, width: usize, classes: usize) -> Result<Self> {
        let invalid = |detail: String| Error::Invalid { what: "labelled images".into(), detail };
        if height == 0 || width == 0 {
            return Err(invalid(format!("image size {height}x{width}")));
        }
        if pixels.len() != labels.len() * height * width {
            return Err(invalid(format!(
                "{} pixel bytes for {} images of {height}x{width}",
                pixels.len(),
                labels.len()
            )));
        }
        if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= classes) {
            return Err(invalid(format!("label {l} at index {i} is out of range for {classes} classes")));
        }
        Ok(Self { pixels, labels, height, width, classes })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Image width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// All labels.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The pixels of image `index`, row-major. Panics if `index >= len()`.
    pub fn pixels(&self, index: usize) -> &[u8] {
        let n = self.height * self.width;
        &self.pixels[index * n..(index + 1) * n]
    }

    /// Image `index` as an `image` buffer. Panics if `index >= len()`.
    pub fn image(&self, index: usize) -> GrayImage {
        let mut img = GrayImage::new(self.width as u32, self.height as u32);
        img.copy_from_slice(self.pixels(index));
        img
    }

    /// Number of images per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// The images at `indices`, in that order (e.g. a subset for quick experiments).
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        let mut pixels = Vec::with_capacity(indices.len() * self.height * self.width);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            if i >= self.len() {
                return Err(Error::Invalid {
                    what: "subset".into(),
                    detail: format!("index {i} out of range for {} images", self.len()),
                });
            }
            pixels.extend_from_slice(self.pixels(i));
            labels.push(self.labels[i]);
        }
        Self::new(pixels, labels, self.height, self.width, self.classes)
    }
}

impl crate::Dataset for LabelledImages {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, index: usize) -> Result<crate::Example> {
        if index >= self.len() {
            return Err(crate::dataset::out_of_range("labelled images", index, self.len()));
        }
        Ok(crate::Example { features: crate::Features::Gray(self.image(index)), label: self.labels[index] as u32 })
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn label(&self, index: usize) -> Result<u32> {
        self.labels
            .get(index)
            .map(|&l| l as u32)
            .ok_or_else(|| crate::dataset::out_of_range("labelled images", index, self.len()))
    }
}
