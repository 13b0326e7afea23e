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

impl ColorMode {
    /// The mode of `channels` input channels: 1 is grey, anything else RGB.
    pub fn for_channels(channels: usize) -> Self {
        if channels == 1 {
            ColorMode::Gray
        } else {
            ColorMode::Rgb
        }
    }
}

/// Options of [`ImageFolder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageFolderOptions {
    /// Grey or RGB.
    pub color: ColorMode,
    /// Resize every image to `(width, height)` (bilinear); `None` keeps sizes as they are (the
    /// loader's transforms resize).
    pub size: Option<(u32, u32)>,
    /// Decode every image when the folder is opened and leave out the ones that fail (listed by
    /// [`ImageFolder::skipped`]) instead of failing on them during training.
    pub skip_bad_images: bool,
}

impl Default for ImageFolderOptions {
    fn default() -> Self {
        Self { color: ColorMode::Rgb, size: None, skip_bad_images: false }
    }
}

/// File extensions read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "webp"];

/// `root/<class>/<image>`: classes are the sub-folder names, sorted; images are decoded when
/// requested by [`crate::decode_image`] (size limits, truncation checks), and a file that cannot
/// be decoded is an [`Error::Decode`] or [`Error::ImageTooLarge`] naming it (see
/// [`ImageFolderOptions::skip_bad_images`] and [`ImageFolder::verify`] to find them up front).
#[derive(Debug, Clone)]
pub struct ImageFolder {
    root: PathBuf,
    files: Vec<(PathBuf, u32)>,
    class_names: Vec<String>,
    options: ImageFolderOptions,
    skipped: Vec<(PathBuf, String)>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io(ember_io::IoError { path, source })
}

/// The visible sub-folders of `dir`, sorted by name.
pub(crate) fn sub_folders(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && !is_hidden(p))
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn folder_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

impl ImageFolder {
    /// Scans `root`: every visible sub-folder is a class (sorted by name), every file in it with
    /// an image extension ([`IMAGE_EXTENSIONS`]) an example. Fails naming the folder when there
    /// are no class folders or a class folder holds no image.
    pub fn open(root: impl AsRef<Path>, options: ImageFolderOptions) -> Result<Self> {
        let root = root.as_ref();
        let class_names: Vec<String> = sub_folders(root)?.iter().map(|d| folder_name(d)).collect();
        Self::with_classes(root, &class_names, options)
    }

    /// Scans `root` for exactly the classes `class_names` (in that label order): a validation or
    /// test folder must have the training folder's classes. Fails naming what differs.
    pub fn with_classes(root: impl AsRef<Path>, class_names: &[String], options: ImageFolderOptions) -> Result<Self> {
        let root = root.as_ref();
        let invalid = |detail: String| Error::Invalid { what: root.display().to_string(), detail };
        if !root.is_dir() {
            return Err(invalid("is not a folder".into()));
        }
        let found: Vec<String> = sub_folders(root)?.iter().map(|d| folder_name(d)).collect();
        if found.is_empty() {
            return Err(invalid(format!(
                "has no class folders: an image folder holds one sub-folder of images ({}) per class, \
                 e.g. {}/cat/1.jpg",
                IMAGE_EXTENSIONS.join(", "),
                root.display()
            )));
        }
        if found != class_names {
            let missing: Vec<&str> = class_names.iter().filter(|c| !found.contains(c)).map(String::as_str).collect();
            let extra: Vec<&str> = found.iter().filter(|c| !class_names.contains(c)).map(String::as_str).collect();
            return Err(invalid(format!(
                "its classes differ from the training classes: missing [{}], not in training [{}]",
                missing.join(", "),
                extra.join(", ")
            )));
        }
        let mut files = Vec::new();
        for (label, name) in class_names.iter().enumerate() {
            let dir = root.join(name);
            let mut members: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(io(&dir))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && !is_hidden(p) && has_image_extension(p))
                .collect();
            if members.is_empty() {
                return Err(Error::Invalid {
                    what: dir.display().to_string(),
                    detail: format!("class folder holds no images ({})", IMAGE_EXTENSIONS.join(", ")),
                });
            }
            members.sort();
            let label = u32::try_from(label).map_err(|_| invalid("more than 2^32 classes".into()))?;
            files.extend(members.into_iter().map(|p| (p, label)));
        }
        let mut folder =
            Self { root: root.to_path_buf(), files, class_names: class_names.to_vec(), options, skipped: Vec::new() };
        if options.skip_bad_images {
            folder.skipped = folder.verify();
            let bad: std::collections::HashSet<&PathBuf> = folder.skipped.iter().map(|(p, _)| p).collect();
            folder.files.retain(|(p, _)| !bad.contains(p));
            if folder.files.is_empty() {
                return Err(invalid(format!("none of its {} images can be decoded", folder.skipped.len())));
            }
        }
        Ok(folder)
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

    /// Images left out because they could not be decoded (with
    /// [`ImageFolderOptions::skip_bad_images`]), with the decoder's message.
    pub fn skipped(&self) -> &[(PathBuf, String)] {
        &self.skipped
    }

    /// Decodes every image (on all cores) and returns the ones that fail, with the decoder's
    /// message, in file order.
    pub fn verify(&self) -> Vec<(PathBuf, String)> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(self.files.len().max(1));
        let chunk = self.files.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .files
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .filter_map(|(p, _)| read_image(p).err().map(|e| (p.clone(), e.to_string())))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
        })
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

    fn origin(&self, index: usize) -> String {
        match self.files.get(index) {
            Some((path, _)) => path.display().to_string(),
            None => format!("example {index} (out of range)"),
        }
    }
}
