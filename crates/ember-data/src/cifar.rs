//! CIFAR-10 and CIFAR-100 in their binary format.
//!
//! Each record is the label byte(s) followed by 3,072 bytes: the 32x32 red plane, then green,
//! then blue. CIFAR-10 has one label byte (`data_batch_{1..5}.bin`, `test_batch.bin`); CIFAR-100
//! two, coarse then fine (`train.bin`, `test.bin`).

use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::dataset::out_of_range;
use crate::{Dataset, Error, Example, Features, Result, Split};

const PIXELS: usize = 32 * 32 * 3;

/// Which CIFAR, and for CIFAR-100 which labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarKind {
    /// 10 classes.
    Cifar10,
    /// 100 fine classes.
    Cifar100Fine,
    /// 20 coarse super-classes.
    Cifar100Coarse,
}

impl CifarKind {
    fn label_bytes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 1,
            _ => 2,
        }
    }

    /// Number of classes.
    pub fn classes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 10,
            CifarKind::Cifar100Fine => 100,
            CifarKind::Cifar100Coarse => 20,
        }
    }

    fn files(self, split: Split) -> Vec<&'static str> {
        match (self, split) {
            (CifarKind::Cifar10, Split::Train) => {
                vec!["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"]
            }
            (CifarKind::Cifar10, Split::Test) => vec!["test_batch.bin"],
            (_, Split::Train) => vec!["train.bin"],
            (_, Split::Test) => vec!["test.bin"],
        }
    }
}

/// A CIFAR split in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cifar {
    planes: Vec<u8>,
    labels: Vec<u8>,
    kind: CifarKind,
}

impl Cifar {
    /// Loads `split` from `dir` (the directory holding the `.bin` files, or its parent holding
    /// `cifar-10-batches-bin/` or `cifar-100-binary/`).
    pub fn load(dir: &Path, kind: CifarKind, split: Split) -> Result<Self> {
        let nested = dir.join(match kind {
            CifarKind::Cifar10 => "cifar-10-batches-bin",
            _ => "cifar-100-binary",
        });
        let dir = if nested.is_dir() { nested } else { dir.to_path_buf() };
        let mut out = Self { planes: Vec::new(), labels: Vec::new(), kind };
        for name in kind.files(split) {
            let path = dir.join(name);
            if !path.is_file() {
                return Err(Error::MissingFile { dir: dir.clone(), file: name.to_string() });
            }
            out.append_file(&path)?;
        }
        Ok(out)
    }

    /// Reads one batch file and appends its records.
    pub fn append_file(&mut self, path: &Path) -> Result<()> {
        let record = self.kind.label_bytes() + PIXELS;
        let bytes =
            std::fs::read(path).map_err(|source| Error::Io(ember_io::IoError { path: path.to_path_buf(), source }))?;
        if bytes.is_empty() || bytes.len() % record != 0 {
            let expected = (bytes.len() / record + 1) * record;
            return Err(Error::Truncated {
                path: PathBuf::from(path),
                expected: expected as u64,
                found: bytes.len() as u64,
            });
        }
        // Every label is checked before anything is appended, so a rejected file leaves the
        // dataset as it was.
        let label_at = self.kind.label_bytes() - 1 - usize::from(self.kind == CifarKind::Cifar100Coarse);
        let records = bytes.chunks_exact(record);
        if let Some((index, rec)) =
            records.clone().enumerate().find(|(_, rec)| rec[label_at] as usize >= self.kind.classes())
        {
            return Err(Error::LabelOutOfRange {
                path: path.to_path_buf(),
                index,
                label: rec[label_at],
                classes: self.kind.classes(),
            });
        }
        self.labels.reserve(bytes.len() / record);
        self.planes.reserve(bytes.len() / record * PIXELS);
        for rec in records {
            self.labels.push(rec[label_at]);
            self.planes.extend_from_slice(&rec[self.kind.label_bytes()..]);
        }
        debug_assert_eq!(self.planes.len(), self.labels.len() * PIXELS);
        Ok(())
    }

    /// Image `index` as RGB.
    pub fn image(&self, index: usize) -> Option<RgbImage> {
        // Checked: `Dataset::get` must answer any index with an error, not an overflow.
        let start = index.checked_mul(PIXELS)?;
        let planes = self.planes.get(start..start.checked_add(PIXELS)?)?;
        let (r, rest) = planes.split_at(1024);
        let (g, b) = rest.split_at(1024);
        let mut img = RgbImage::new(32, 32);
        for (i, px) in img.pixels_mut().enumerate() {
            px.0 = [r[i], g[i], b[i]];
        }
        Some(img)
    }
}

impl Dataset for Cifar {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, index: usize) -> Result<Example> {
        let image = self.image(index).ok_or_else(|| out_of_range("cifar", index, self.len()))?;
        Ok(Example { features: Features::Rgb(image), label: self.labels[index] as u32 })
    }

    fn classes(&self) -> usize {
        self.kind.classes()
    }

    fn label(&self, index: usize) -> Result<u32> {
        self.labels.get(index).map(|&l| l as u32).ok_or_else(|| out_of_range("cifar", index, self.len()))
    }
}
