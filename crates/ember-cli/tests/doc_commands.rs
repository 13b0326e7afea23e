//! Every `ember` command shown in the READMEs and the guide runs, as written, with
//! `EMBER_QUICK=1` (one epoch, a few hundred images, small inputs): documentation that drifts
//! from the CLI fails CI.
//!
//! The commands run with `sh` in a scratch directory that holds what the documents' placeholder
//! names stand for: `DIR` (MNIST-format IDX files of real digits), `photos/` (an image folder),
//! `my_photo.jpg`, `cat.jpg`, `model.pth` (a small PyTorch checkpoint), `run.toml`,
//! `resnet18.safetensors` (random ResNet-18 weights), and, when `EMBER_SHARED_DIR` names the
//! shared assets, `lite0.pth` and `imagenet_classes.txt`. `EMBER_DATA_DIR` points at copies of
//! `DIR` for commands that name a dataset without a directory, so nothing is downloaded. A
//! `cargo xtask image-folder ... --out X` line is replaced by writing an image folder at `X`.
//! Commands of one group (the READMEs; the guide in both languages) share one directory and run
//! in document order, each distinct command once, so later commands see earlier runs.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device};
use image::{DynamicImage, GrayImage};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One shell command from a document.
#[derive(Debug, Clone, PartialEq)]
struct DocCommand {
    file: PathBuf,
    line: usize,
    text: String,
}

/// The text before an unquoted ` #` comment.
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\'' if !double => single = !single,
            b'"' if !single => double = !double,
            b'#' if !single && !double && (i == 0 || bytes[i - 1].is_ascii_whitespace()) => {
                return line[..i].trim_end()
            }
            _ => {}
        }
    }
    line.trim_end()
}

/// The `ember` commands (and `cargo run ... --bin ember --` spelled out) and
/// `cargo xtask image-folder` lines of the shell code blocks of a Markdown text.
fn commands_in(text: &str, file: &Path) -> Vec<DocCommand> {
    let mut out = Vec::new();
    let mut in_shell = false;
    let mut in_other = false;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if let Some(lang) = trimmed.strip_prefix("```") {
            if in_shell || in_other {
                (in_shell, in_other) = (false, false);
            } else if matches!(lang.trim(), "bash" | "sh" | "shell" | "console") {
                in_shell = true;
            } else {
                in_other = true;
            }
            continue;
        }
        if !in_shell {
            continue;
        }
        let line = strip_comment(trimmed.strip_prefix("$ ").unwrap_or(trimmed)).trim();
        let line = match line.strip_prefix("cargo run --release --bin ember --") {
            Some(rest) => format!("ember{rest}"),
            None => line.to_string(),
        };
        if line.starts_with("ember ") || line == "ember" || line.starts_with("cargo xtask image-folder") {
            out.push(DocCommand { file: file.to_path_buf(), line: i + 1, text: line });
        }
    }
    out
}

/// The chapters of a guide in `SUMMARY.md` order.
fn guide_chapters(book: &Path) -> Vec<PathBuf> {
    let src = book.join("src");
    let Ok(summary) = std::fs::read_to_string(src.join("SUMMARY.md")) else { return Vec::new() };
    summary
        .lines()
        .filter_map(|l| {
            let start = l.find("](")? + 2;
            let end = start + l[start..].find(')')?;
            Some(src.join(&l[start..end]))
        })
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect()
}

fn read_gz(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_end(&mut bytes).unwrap();
    bytes
}

/// The first `n` examples of the bundled MNIST sample's `prefix` (train or t10k) IDX files.
fn sample(prefix: &str, n: usize) -> (Vec<u8>, Vec<u8>) {
    let dir = root().join("crates/ember-data/assets/mnist-sample");
    let images = read_gz(&dir.join(format!("{prefix}-images-idx3-ubyte.gz")));
    let labels = read_gz(&dir.join(format!("{prefix}-labels-idx1-ubyte.gz")));
    (images[16..16 + n * 784].to_vec(), labels[8..8 + n].to_vec())
}

/// `dir` as an MNIST-format directory: `n_train` training and `n_test` test digits, real ones.
fn write_idx(dir: &Path, n_train: usize, n_test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        let (images, labels) = sample(prefix, n);
        let mut img = vec![0, 0, 8, 3];
        for d in [n as u32, 28, 28] {
            img.extend_from_slice(&d.to_be_bytes());
        }
        img.extend_from_slice(&images);
        let mut lab = vec![0, 0, 8, 1];
        lab.extend_from_slice(&(n as u32).to_be_bytes());
        lab.extend_from_slice(&labels);
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), img).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), lab).unwrap();
    }
}

/// `dir/{train,test}/<digit>/*.png`: real digits of three classes, some RGB, a few sizes.
fn write_folder(dir: &Path) {
    for (split, prefix, per_class) in [("train", "train", 8), ("test", "t10k", 4)] {
        let (images, labels) = sample(prefix, 300);
        for class in [0u8, 1, 2] {
            let folder = dir.join(split).join(format!("digit_{class}"));
            std::fs::create_dir_all(&folder).unwrap();
            let found = labels.iter().enumerate().filter(|(_, l)| **l == class).take(per_class);
            for (k, (i, _)) in found.enumerate() {
                let img = GrayImage::from_raw(28, 28, images[i * 784..(i + 1) * 784].to_vec()).unwrap();
                let side = 28 + 8 * (k as u32 % 3);
                let img = DynamicImage::ImageLuma8(img).resize_exact(side, side, image::imageops::FilterType::Triangle);
                let img = if k % 2 == 0 { DynamicImage::ImageRgb8(img.to_rgb8()) } else { img };
                img.save(folder.join(format!("{k:03}.png"))).unwrap();
            }
        }
    }
}

/// Random ResNet-18 weights with torchvision's names, standing in for a downloaded file.
fn write_resnet18(path: &Path) {
    let store = ember_layers::ParamStore::new(0, &Device::Cpu);
    let options = ember_zoo::ModelOptions::new((3, 224, 224), 1000);
    ember_zoo::build_with("resnet18", &options, store.var_builder(DType::F32)).unwrap();
    ember_train::checkpoint::save(&store, path).unwrap();
}

/// The scratch directory with every placeholder the documents use; `None` entries of the
/// returned list are placeholders that need the shared assets, which are absent.
fn sandbox(dir: &Path, shared: Option<&Path>) -> Vec<String> {
    write_idx(&dir.join("DIR"), 300, 100);
    for name in ["mnist", "fashion-mnist"] {
        write_idx(&dir.join("data").join(name), 300, 100);
    }
    write_folder(&dir.join("photos"));
    let digit = dir.join("photos/test/digit_2/000.png");
    for name in ["my_photo.jpg", "cat.jpg"] {
        image::open(&digit).unwrap().to_rgb8().save(dir.join(name)).unwrap();
    }
    let fixtures = ["../ember-io/tests/fixtures", "../ember-finetune/tests/fixtures"]
        .iter()
        .map(|p| Path::new(env!("CARGO_MANIFEST_DIR")).join(p).join("legacy_state_dict.pth"))
        .find(|p| p.is_file())
        .expect("the legacy .pth fixture");
    std::fs::copy(fixtures, dir.join("model.pth")).unwrap();
    std::fs::write(dir.join("run.toml"), "model = \"mnist-cnn\"\nepochs = 1\nout = \"runs/from-toml\"\n").unwrap();
    write_resnet18(&dir.join("resnet18.safetensors"));
    let mut missing = Vec::new();
    match shared {
        Some(shared) => {
            let lite0 = shared.join("weights/efficientnet-lite0/efficientnet-lite0-57934424.pth");
            std::fs::copy(lite0, dir.join("lite0.pth")).unwrap();
            std::fs::copy(shared.join("data/imagenet_classes.txt"), dir.join("imagenet_classes.txt")).unwrap();
        }
        None => missing.extend(["lite0.pth", "imagenet_classes.txt", "EMBER_SHARED_DIR"].map(String::from)),
    }
    missing
}

/// The value after `flag` in a command line.
fn flag_value<'a>(text: &'a str, flag: &str) -> Option<&'a str> {
    let mut words = text.split_whitespace();
    words.by_ref().find(|w| *w == flag)?;
    words.next()
}

/// The files and directories a command writes: its `--out`, or the target of
/// `ember convert SOURCE TARGET`.
fn made_by(text: &str) -> Vec<String> {
    let mut made: Vec<String> = flag_value(text, "--out").map(String::from).into_iter().collect();
    if let Some(rest) = text.strip_prefix("ember convert ") {
        let positional: Vec<&str> = rest.split_whitespace().filter(|w| !w.starts_with("--")).collect();
        made.extend(positional.get(1).map(|t| t.to_string()));
    }
    made
}

/// Runs a group of commands in one fresh directory; returns the failures.
fn run_group(name: &str, commands: &[DocCommand]) -> Vec<String> {
    let shared = std::env::var_os("EMBER_SHARED_DIR").map(PathBuf::from).filter(|p| p.is_dir());
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let mut missing = sandbox(dir, shared.as_deref());
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_ember")).parent().unwrap().to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let mut seen = HashSet::new();
    let (mut failures, mut skipped, mut ran) = (Vec::new(), Vec::new(), 0);
    for c in commands {
        if !seen.insert(c.text.clone()) {
            continue;
        }
        let at = format!("{}:{}", c.file.strip_prefix(root()).unwrap_or(&c.file).display(), c.line);
        if c.text.contains("...") {
            failures.push(format!("{at}: `{}` elides part of the command; write it out so it runs", c.text));
            continue;
        }
        if let Some(token) = missing.iter().find(|t| c.text.contains(t.as_str())) {
            skipped.push(format!("{at} (needs {token})"));
            // What the skipped command would have made is missing too: later commands that
            // read it are skipped, not failed.
            missing.extend(made_by(&c.text));
            continue;
        }
        if c.text.starts_with("cargo xtask image-folder") {
            match flag_value(&c.text, "--out") {
                Some(out) => write_folder(&dir.join(out)),
                None => failures.push(format!("{at}: `{}` has no --out", c.text)),
            }
            continue;
        }
        let output = Command::new("sh")
            .arg("-c")
            .arg(&c.text)
            .current_dir(dir)
            .env("PATH", &path)
            .env("EMBER_QUICK", "1")
            .env("EMBER_DATA_DIR", dir.join("data"))
            .output()
            .unwrap();
        ran += 1;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(4).collect();
            failures.push(format!(
                "{at}: `{}` exited with {}: {}",
                c.text,
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
    }
    println!("{name}: ran {ran} commands, {} failed", failures.len());
    if !skipped.is_empty() {
        println!("{name}: SKIPPED {} commands that need EMBER_SHARED_DIR: {}", skipped.len(), skipped.join(", "));
    }
    failures
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn readme_commands_run() {
    let mut commands = Vec::new();
    for name in ["README.md", "README.zh-CN.md"] {
        let path = root().join(name);
        commands.extend(commands_in(&read(&path), &path));
    }
    assert!(commands.len() >= 10, "found only {} commands in the READMEs", commands.len());
    let failures = run_group("README", &commands);
    assert!(failures.is_empty(), "{} README commands failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn guide_commands_run() {
    let mut commands = Vec::new();
    for lang in ["en", "zh-CN"] {
        for chapter in guide_chapters(&root().join("docs/guide").join(lang)) {
            commands.extend(commands_in(&read(&chapter), &chapter));
        }
    }
    if commands.is_empty() {
        println!("guide: no guide chapters with commands under docs/guide yet");
        return;
    }
    let failures = run_group("guide", &commands);
    assert!(failures.is_empty(), "{} guide commands failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn commands_are_found_in_shell_blocks_only_and_comments_dropped() {
    let text = "intro `ember x`\n```bash\nember train --ops \"a # b\"   # trains\n# a comment\ncargo run --release \
                --bin ember -- eval\ncargo xtask ci\ncargo xtask image-folder --out f\n```\n```rust\nember fake\n```\n\
                ```console\n$ ember zoo list\n```\n";
    let found: Vec<String> = commands_in(text, Path::new("x.md")).into_iter().map(|c| c.text).collect();
    assert_eq!(
        found,
        ["ember train --ops \"a # b\"", "ember eval", "cargo xtask image-folder --out f", "ember zoo list"]
    );
    assert_eq!(flag_value("cargo xtask image-folder --idx a --out f", "--out"), Some("f"));
    assert_eq!(made_by("cargo xtask image-folder --idx a --out f"), ["f"]);
    assert_eq!(made_by("ember convert $EMBER_SHARED_DIR/w.pth lite0.safetensors"), ["lite0.safetensors"]);
    assert!(made_by("ember eval --checkpoint x").is_empty());
}
