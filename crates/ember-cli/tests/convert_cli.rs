//! `ember convert --rename`: rules and presets applied while converting, so the file loads with
//! no rules; bad rules, unknown presets and collisions end in one-line errors and write nothing.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use common::{assert_one_line_error, ember, path_in_tempdir};

/// ember-io's checkpoint fixtures (PyTorch files written by its `gen_checkpoints.py`).
fn io_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ember-io/tests/fixtures")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ember-finetune/tests/fixtures")
}

fn names_in(path: &Path) -> BTreeSet<String> {
    let bytes = std::fs::read(path).unwrap();
    safetensors::SafeTensors::deserialize(&bytes).unwrap().names().into_iter().map(String::from).collect()
}

/// Non-empty lines' first words of a `name shape` list.
fn listed_names(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().filter_map(|l| l.split_whitespace().next()).map(String::from).collect()
}

#[test]
fn rules_rename_a_pytorch_checkpoint_in_order() {
    let (_dir, out) = path_in_tempdir("renamed.safetensors");
    let pth = io_fixtures().join("legacy_state_dict.pth");
    let run = ember(&[
        "convert",
        pth.to_str().unwrap(),
        out.to_str().unwrap(),
        "--rename",
        r"regex:^fc\.=head.",
        "--rename",
        "add:net.",
        "--json",
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let names = names_in(&out);
    assert_eq!(names.len(), 9);
    for expected in ["net.head.weight", "net.head.bias", "net.conv.weight", "net.bn.num_batches_tracked"] {
        assert!(names.contains(expected), "{expected} not in {names:?}");
    }
}

#[test]
fn timm_preset_gives_ember_efficientnet_lite_names() {
    let (dir, timm_file) = path_in_tempdir("timm_lite0.safetensors");
    let timm_names = listed_names(&fixtures().join("timm_efficientnet_lite0_names.txt"));
    // One value per tensor: the names are what this test is about (tests/timm_preset.rs in
    // ember-finetune checks the shapes).
    let tensors: HashMap<String, Tensor> = timm_names
        .iter()
        .map(|n| (n.clone(), Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu).unwrap()))
        .collect();
    candle_core::safetensors::save(&tensors, &timm_file).unwrap();

    let out = dir.path().join("lite0.safetensors");
    let run = ember(&["convert", timm_file.to_str().unwrap(), out.to_str().unwrap(), "--rename", "timm", "--json"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let converted: BTreeSet<String> =
        names_in(&out).into_iter().filter(|n| !n.ends_with("num_batches_tracked")).collect();
    let ember_lite0: BTreeSet<String> = listed_names(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../ember-zoo/tests/fixtures/efficientnet_lite0_state.txt"),
    )
    .into_iter()
    .collect();
    assert_eq!(converted, ember_lite0);
}

#[test]
fn bad_rules_unknown_presets_and_collisions_write_nothing() {
    let (dir, out) = path_in_tempdir("never.safetensors");
    let pth = io_fixtures().join("legacy_state_dict.pth");
    let convert = |rule: &str| ember(&["convert", pth.to_str().unwrap(), out.to_str().unwrap(), "--rename", rule]);
    assert_one_line_error(&convert("keras"), &["keras", "timm"]);
    assert_one_line_error(&convert("regex:(=x"), &["renaming rule `(`", "unclosed group"]);
    assert_one_line_error(
        &convert(r"regex:^(fc|conv)\.weight$=w"),
        &["legacy_state_dict.pth", "fc.weight", "conv.weight", "`w`"],
    );
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no temporary file left");
}
