//! One module per subcommand.

pub mod augment;
pub mod bench;
pub mod checkpoint;
pub mod continual;
pub mod data_info;
pub mod eval;
pub mod finetune;
pub mod fusion;
pub mod predict;
pub mod train;
pub mod vae;
pub mod zoo;

use std::io::Write;
use std::path::Path;

use ember_data::{KnownDataset, LabelledImages, Split};

/// Loads a split of a known dataset: from `data_dir`, the bundled sample or the usual
/// directories, else downloaded into the cache with a progress line on stderr.
pub fn load_split(dataset: KnownDataset, data_dir: Option<&Path>, split: Split) -> anyhow::Result<LabelledImages> {
    let mut last_file = String::new();
    let mut progress = |file: &str, done: u64, total: Option<u64>| {
        if file != last_file {
            last_file = file.to_string();
            eprintln!();
        }
        match total {
            Some(t) if t > 0 => {
                eprint!("\rdownloading {file}: {:>5.1} % of {:.1} MB", done as f64 * 100.0 / t as f64, t as f64 / 1e6)
            }
            _ => eprint!("\rdownloading {file}: {:.1} MB", done as f64 / 1e6),
        }
        let _ = std::io::stderr().flush();
    };
    let set = dataset.load_or_download(data_dir, split, &mut progress)?;
    if !last_file.is_empty() {
        eprintln!();
    }
    Ok(set)
}
