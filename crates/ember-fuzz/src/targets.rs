//! The fuzz targets: one per parser, each calling ember's real entry points.
//!
//! A target returns whether the input was accepted; an `Err` from the parser is a fine answer
//! (`false`). A panic, an abort, a hang or an allocation over the limit is a bug. Targets of
//! formats with checksums also run the input with its checksums repaired ([`crate::fixup`]), so
//! mutations reach the parser behind them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ember_data::{CifarKind, CsvDataset, CsvOptions, Dataset, LabelColumn, Split};

/// One parser under test.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Name on the command line and of the corpus and regression folders.
    pub name: &'static str,
    /// What it exercises.
    pub about: &'static str,
    /// Runs the parser on one input; `true` when the input was accepted.
    pub run: fn(&[u8]) -> bool,
    /// Tokens of the format (keywords, markers, opcodes) that mutations insert.
    pub dict: &'static [&'static [u8]],
}

/// Pickle opcodes and the globals PyTorch checkpoints use.
const PICKLE: &[&[u8]] = &[
    b"(",
    b")",
    b"]",
    b"}",
    b"t",
    b"R",
    b"a",
    b"e",
    b"s",
    b"u",
    b"N",
    b"\x88",
    b"\x89",
    b"\x85",
    b"\x86",
    b"\x87",
    b"h\x00",
    b"h\x05",
    b"q\x00",
    b"q\x05",
    b"r\x00\x01\x00\x00",
    b"K\x00",
    b"K\xff",
    b"M\xff\xff",
    b"J\xff\xff\xff\x7f",
    b"J\xff\xff\xff\xff",
    b"\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f",
    b"\x8a\x00",
    b"X\x01\x00\x00\x00a",
    b"X\xff\xff\xff\x7f",
    b"Q",
    b"b",
    b"0",
    b"2",
    b"\x94",
    b"\x95",
    b".",
    b"ctorch._utils\n_rebuild_tensor_v2\n",
    b"ctorch._utils\n_rebuild_parameter\n",
    b"ctorch\nFloatStorage\n",
    b"ctorch\nLongStorage\n",
    b"ccollections\nOrderedDict\n",
    b"X\x07\x00\x00\x00storage",
];

/// TOML syntax and boundary values.
const TOML: &[&[u8]] = &[
    b"[",
    b"]",
    b"[[",
    b"]]",
    b"{",
    b"}",
    b"=",
    b",",
    b"\"",
    b"'",
    b"'''",
    b"\"\"\"",
    b"\n",
    b"#",
    b"a.b.c",
    b"1e999",
    b"nan",
    b"-inf",
    b"-0",
    b"0x7fffffffffffffff",
    b"-9223372036854775808",
    b"18446744073709551616",
    b"1979-05-27T07:32:00Z",
    b"\\U0010FFFF",
    b"\\uD800",
    b"epochs",
    b"lr",
    b"ops",
    b"out",
    b"true",
];

/// Separators and numbers that parse oddly.
const CSV: &[&[u8]] = &[
    b",",
    b";",
    b"\n",
    b"\r\n",
    b"\"",
    b" ",
    b"NaN",
    b"inf",
    b"-1",
    b"4294967295",
    b"4294967296",
    b"1e39",
    b"label",
    b"\xef\xbb\xbf",
    b"\xff",
];

/// safetensors header JSON.
const SAFETENSORS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b"\"dtype\":\"F32\"",
    b"\"dtype\":\"BOOL\"",
    b"\"dtype\":\"F8_E4M3\"",
    b"\"shape\":[",
    b"\"data_offsets\":[0,",
    b"\"__metadata__\":{",
    b"18446744073709551615",
    b"4294967296",
    b"0",
];

/// PNG chunk types, JPEG markers, WebP and BMP tags.
const IMAGE: &[&[u8]] = &[
    b"IHDR",
    b"IDAT",
    b"PLTE",
    b"tRNS",
    b"acTL",
    b"fcTL",
    b"fdAT",
    b"iCCP",
    b"IEND",
    b"\xff\xd8",
    b"\xff\xc0",
    b"\xff\xc2",
    b"\xff\xc4",
    b"\xff\xdb",
    b"\xff\xda",
    b"\xff\xdd",
    b"\xff\xd9",
    b"\xff\xe1Exif\x00\x00",
    b"RIFF",
    b"WEBP",
    b"VP8 ",
    b"VP8L",
    b"VP8X",
    b"ANIM",
    b"ANMF",
    b"ALPH",
    b"BM",
    b"\xff\xff\xff\x7f",
];

/// IDX magic numbers and sizes.
const IDX: &[&[u8]] = &[b"\x00\x00\x08\x01", b"\x00\x00\x08\x03", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"];

/// Every target, in the order `cargo xtask fuzz` runs them.
pub const TARGETS: &[Target] = &[
    Target { name: "idx", about: "ember_data::read_idx / parse_idx on raw IDX files", run: idx, dict: IDX },
    Target { name: "idx-gz", about: "ember_data::read_idx / parse_idx on gzip IDX files", run: idx_gz, dict: IDX },
    Target { name: "cifar", about: "ember_data::Cifar binary batches (CIFAR-10 and CIFAR-100)", run: cifar, dict: &[] },
    Target { name: "csv", about: "ember_data::CsvDataset::load / parse", run: csv, dict: CSV },
    Target {
        name: "image",
        about: "ember_data::decode_image (PNG, JPEG, BMP, WebP), as the loader uses it",
        run: image,
        dict: IMAGE,
    },
    Target {
        name: "safetensors",
        about: "ember_io::read_safetensors, read_metadata and read_checkpoint",
        run: safetensors,
        dict: SAFETENSORS,
    },
    Target { name: "pytorch-zip", about: "ember_io::read_checkpoint on zip .pt files", run: pytorch, dict: PICKLE },
    Target {
        name: "pytorch-legacy",
        about: "ember_io::read_checkpoint on legacy .pth pickles",
        run: pytorch,
        dict: PICKLE,
    },
    Target { name: "tensorboard", about: "ember_train::tensorboard::read_events", run: tensorboard, dict: &[] },
    Target { name: "toml", about: "ember_cli::parse_toml (`ember train --config`)", run: toml, dict: TOML },
];

/// The target called `name`.
pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// A private directory for the files path-based parsers read (one per process).
fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ember-fuzz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        dir
    })
}

/// Removes the scratch directory (call once, at the end of a run).
pub fn remove_scratch() {
    let _ = std::fs::remove_dir_all(scratch_dir());
}

/// Writes `data` to `name` in the scratch directory.
fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch_dir().join(name);
    // A new file each time: on ext4, truncating and rewriting a file forces it to disk on close
    // (`auto_da_alloc`), which made path-based targets 25x slower.
    let _ = std::fs::remove_file(&path);
    if let Err(err) = std::fs::write(&path, data) {
        panic!("cannot write the fuzz input to {}: {err}", path.display());
    }
    path
}

/// The IDX rank the magic number names (byte 3), if plausible; else 3 (images).
fn idx_rank(raw: &[u8]) -> usize {
    match raw.get(3) {
        Some(&r @ 1..=4) => r as usize,
        _ => 3,
    }
}

fn idx(data: &[u8]) -> bool {
    let rank = idx_rank(data);
    let path = scratch_file("input.idx", data);
    let from_file = ember_data::read_idx(&path, rank, "images");
    let from_memory = ember_data::parse_idx(data, Path::new("input.idx"), rank, "images");
    assert_eq!(from_file.is_ok(), from_memory.is_ok(), "file and memory readers disagree");
    from_file.is_ok()
}

fn idx_gz(data: &[u8]) -> bool {
    // Inputs that are not gzip streams are compressed first, so mutated headers reach the
    // inflating reader too.
    let (gz, rank) = if data.starts_with(&[0x1f, 0x8b]) {
        (data.to_vec(), None)
    } else {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = enc.write_all(data);
        (enc.finish().unwrap_or_default(), Some(idx_rank(data)))
    };
    let path = scratch_file("input.idx.gz", &gz);
    let mut ok = false;
    for rank in rank.map_or(vec![1, 3], |r| vec![r]) {
        ok |= ember_data::read_idx(&path, rank, "images").is_ok();
        ok |= ember_data::parse_idx(&gz, Path::new("input.idx.gz"), rank, "images").is_ok();
    }
    ok
}

fn cifar(data: &[u8]) -> bool {
    scratch_file("test_batch.bin", data);
    scratch_file("test.bin", data);
    let mut ok = false;
    for kind in [CifarKind::Cifar10, CifarKind::Cifar100Fine, CifarKind::Cifar100Coarse] {
        if let Ok(set) = ember_data::Cifar::load(scratch_dir(), kind, Split::Test) {
            ok = true;
            for i in [0, set.len().saturating_sub(1), set.len()] {
                let _ = set.get(i);
                let _ = set.label(i);
            }
        }
    }
    ok
}

fn csv(data: &[u8]) -> bool {
    let path = scratch_file("input.csv", data);
    let mut ok = exercise(CsvDataset::load(&path, &CsvOptions::default()));
    let text = String::from_utf8_lossy(data);
    let options = [
        CsvOptions { label: LabelColumn::Index(0), has_header: false, delimiter: ',' },
        CsvOptions { label: LabelColumn::Name("label".into()), has_header: true, delimiter: ',' },
        CsvOptions { label: LabelColumn::Last, has_header: true, delimiter: ';' },
    ];
    for o in &options {
        ok |= exercise(CsvDataset::parse(&text, Path::new("input.csv"), o));
    }
    ok
}

/// Reads the first and last examples of a dataset, as a loader would.
fn exercise<D: Dataset>(set: ember_data::Result<D>) -> bool {
    let Ok(set) = set else { return false };
    for i in [0, set.len().saturating_sub(1), set.len()] {
        let _ = set.get(i);
        let _ = set.label(i);
    }
    let _ = set.classes();
    true
}

/// Runs `parse` on `data` and, when `fix` repairs its checksums, on the repaired bytes too.
fn with_fixup(data: &[u8], fix: fn(&[u8]) -> Option<Vec<u8>>, parse: fn(&[u8]) -> bool) -> bool {
    let ok = parse(data);
    match fix(data) {
        Some(fixed) => parse(&fixed) || ok,
        None => ok,
    }
}

fn image(data: &[u8]) -> bool {
    with_fixup(data, crate::fixup::png, decode)
}

fn decode(data: &[u8]) -> bool {
    let Ok(img) = ember_data::decode_image(data, Path::new("input.img")) else { return false };
    // What the image-folder loader does next: convert, and resize to the network's input.
    let _ = img.to_luma8();
    let _ = img.to_rgb8();
    let _ = img.resize_exact(8, 8, image::imageops::FilterType::Triangle);
    true
}

fn safetensors(data: &[u8]) -> bool {
    let path = scratch_file("input.safetensors", data);
    let tensors = ember_io::read_safetensors(&path, &candle_core::Device::Cpu).is_ok();
    let metadata = ember_io::read_metadata(&path).is_ok();
    let _ = ember_io::detect_format(data);
    let checkpoint = ember_io::read_checkpoint(&path).is_ok();
    tensors || metadata || checkpoint
}

fn pytorch(data: &[u8]) -> bool {
    with_fixup(data, crate::fixup::zip, |data| {
        let path = scratch_file("input.pt", data);
        ember_io::read_checkpoint(&path).is_ok()
    })
}

fn tensorboard(data: &[u8]) -> bool {
    with_fixup(data, crate::fixup::tfrecord, |data| {
        let path = scratch_file("events.out.tfevents", data);
        ember_train::tensorboard::read_events(&path).is_ok()
    })
}

fn toml(data: &[u8]) -> bool {
    ember_cli::parse_toml(&String::from_utf8_lossy(data), Path::new("train.toml")).is_ok()
}
