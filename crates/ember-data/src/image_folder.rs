//! A folder of images with one sub-folder per class (torchvision's `ImageFolder`).

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use crate::dataset::out_of_range;
use crate::{read_image, Dataset, Error, Example, Features, Result};

/// How images are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMode {
    /// Converted to one grey channel.
    Gray,
    /// Converted to three RGB channels.
    Rgb,
}

/// Options of [`ImageFolder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageFolderOptions {
    /// Grey or RGB.
    pub color: ColorMode,
    /// Resize every image to `(width, height)` (bilinear); `None` keeps sizes as they are.
    pub size: Option<(u32, u32)>,
}

impl Default for ImageFolderOptions {
    fn default() -> Self {
        Self { color: ColorMode::Rgb, size: None }
    }
}

/// File extensions read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "webp"];

/// `root/<class>/<image>`: classes are the sub-folder names, sorted; images are decoded when
/// requested by [`crate::decode_image`] (size limits, truncation checks), and a file that cannot
/// be decoded is an [`Error::Decode`] or [`Error::ImageTooLarge`] naming it (see
/// [`ImageFolder::verify`] to find them all up front).
#[derive(Debug, Clone)]
pub struct ImageFolder {
    root: PathBuf,
    files: Vec<(PathBuf, u32)>,
    class_names: Vec<String>,
    options: ImageFolderOptions,
}

impl ImageFolder {
    /// Scans `root`. Files without an image extension and hidden entries are not examples.
    pub fn open(root: &Path, options: ImageFolderOptions) -> Result<Self> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let mut class_dirs: Vec<PathBuf> = std::fs::read_dir(root)
            .map_err(io(root))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && !is_hidden(p))
            .collect();
        class_dirs.sort();
        let mut files = Vec::new();
        let mut class_names = Vec::new();
        for (label, dir) in class_dirs.iter().enumerate() {
            class_names.push(dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            let mut members: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(io(dir))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && !is_hidden(p) && has_image_extension(p))
                .collect();
            members.sort();
            files.extend(members.into_iter().map(|p| (p, label as u32)));
        }
        if files.is_empty() {
            return Err(Error::Invalid {
                what: root.display().to_string(),
                detail: format!("no images ({}) in class sub-folders", IMAGE_EXTENSIONS.join(", ")),
            });
        }
        Ok(Self { root: root.to_path_buf(), files, class_names, options })
    }

    /// Class names in label order.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// The image files with their labels.
    pub fn files(&self) -> &[(PathBuf, u32)] {
        &self.files
    }

    /// The folder scanned.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Decodes every image and returns the ones that fail, with the decoder's message.
    pub fn verify(&self) -> Vec<(PathBuf, String)> {
        self.files.iter().filter_map(|(p, _)| read_image(p).err().map(|e| (p.clone(), e.to_string()))).collect()
    }
}

fn is_hidden(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

fn has_image_extension(p: &Path) -> bool {
    p.extension().is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_string_lossy().to_ascii_lowercase().as_str()))
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn get(&self, index: usize) -> Result<Example> {
        let (path, label) =
            self.files.get(index).ok_or_else(|| out_of_range("image folder", index, self.files.len()))?;
        let img = read_image(path)?;
        let img = match self.options.size {
            Some((w, h)) if img.width() != w || img.height() != h => img.resize_exact(w, h, FilterType::Triangle),
            _ => img,
        };
        let features = match self.options.color {
            ColorMode::Gray => Features::Gray(img.to_luma8()),
            ColorMode::Rgb => Features::Rgb(img.to_rgb8()),
        };
        Ok(Example { features, label: *label })
    }

    fn classes(&self) -> usize {
        self.class_names.len()
    }

    fn label(&self, index: usize) -> Result<u32> {
        self.files.get(index).map(|(_, l)| *l).ok_or_else(|| out_of_range("image folder", index, self.files.len()))
    }
}
