//! PyTorch checkpoint import: zip and legacy layouts against PyTorch's own values, refusal of
//! foreign globals, and the real EfficientNet-Lite0 checkpoint.

#[path = "support/test_env.rs"]
mod test_env;

use std::path::{Path, PathBuf};

use candle_core::DType;
use ember_io::{convert_to_safetensors, inspect, read_checkpoint, CheckpointFormat, Error};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn check_against_pytorch(file: &str, format: CheckpointFormat) {
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap();
    let (found, tensors) = read_checkpoint(&fixture(file)).unwrap();
    assert_eq!(found, format);
    let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    let expected_names: Vec<&str> = expected.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = names.clone();
    sorted.sort();
    let mut expected_sorted = expected_names.clone();
    expected_sorted.sort();
    assert_eq!(sorted, expected_sorted, "the nested state_dict is unwrapped; `epoch` is not a tensor");
    for (name, t) in &tensors {
        let e = &expected[name];
        let shape: Vec<usize> = e["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!(t.dims(), shape.as_slice(), "{name}");
        let want = match e["dtype"].as_str().unwrap() {
            "float32" => DType::F32,
            "float16" => DType::F16,
            "bfloat16" => DType::BF16,
            "int64" => DType::I64,
            "int32" => DType::I32,
            "float64" => DType::F64,
            other => panic!("{other}"),
        };
        assert_eq!(t.dtype(), want, "{name}");
        let ours = t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let theirs: Vec<f64> = e["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(ours, theirs, "{name}: values differ");
    }
}

#[test]
fn zip_checkpoint_written_by_pytorch_imports_exactly() {
    check_against_pytorch("zip_state_dict.pt", CheckpointFormat::PytorchZip);
}

#[test]
fn legacy_checkpoint_imports_exactly_including_strided_views() {
    check_against_pytorch("legacy_state_dict.pth", CheckpointFormat::PytorchLegacy);
}

#[test]
fn malicious_pickles_are_refused_and_nothing_runs() {
    let marker = Path::new("/tmp/ember-pwned");
    let _ = std::fs::remove_file(marker);
    for file in ["malicious_zip.pt", "malicious_legacy.pth"] {
        let err = read_checkpoint(&fixture(file)).unwrap_err();
        match &err {
            Error::RefusedGlobal { module, name, .. } => {
                assert!(module == "posix" || module == "os" || module == "nt", "{module}");
                assert_eq!(name, "system");
            }
            other => panic!("{file}: {other}"),
        }
        assert!(err.to_string().contains(file) && err.to_string().contains("refusing"), "{err}");
    }
    assert!(!marker.exists(), "the payload ran");
}

#[test]
fn truncated_and_foreign_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("legacy_state_dict.pth")).unwrap();
    let cut = dir.path().join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
    let err = read_checkpoint(&cut).unwrap_err();
    assert!(matches!(err, Error::BadTensor { .. }) && err.to_string().contains("cut.pth"), "{err}");
    let text = dir.path().join("notes.pth");
    std::fs::write(&text, "hello").unwrap();
    assert!(matches!(read_checkpoint(&text).unwrap_err(), Error::UnknownFormat { .. }));
}

#[test]
fn conversion_round_trips_through_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("converted.safetensors");
    let n = convert_to_safetensors(&fixture("zip_state_dict.pt"), &out).unwrap();
    let (format, info) = inspect(&out).unwrap();
    assert_eq!((format, info.len()), (CheckpointFormat::Safetensors, n));
    let (_, original) = read_checkpoint(&fixture("zip_state_dict.pt")).unwrap();
    let (_, converted) = read_checkpoint(&out).unwrap();
    for (name, t) in original {
        let c = &converted.iter().find(|(n, _)| *n == name).unwrap().1;
        assert_eq!(c.dtype(), t.dtype());
        let a = t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let b = c.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        assert_eq!(a, b, "{name}");
    }
}

#[test]
fn shared_efficientnet_lite0_legacy_checkpoint_imports() {
    let Some(shared) = test_env::shared_dir() else { return };
    let path = shared.join("weights/efficientnet-lite0/efficientnet-lite0-57934424.pth");
    let (format, tensors) = read_checkpoint(&path).unwrap();
    assert_eq!(format, CheckpointFormat::PytorchLegacy);
    assert_eq!(tensors.len(), 296);
    assert_eq!(tensors[0].0, "_conv_stem.weight");
    assert_eq!(tensors[0].1.dims(), &[32, 3, 3, 3]);
    let trainable: usize = tensors
        .iter()
        .filter(|(n, _)| !n.contains("running_") && !n.ends_with("num_batches_tracked"))
        .map(|(_, t)| t.elem_count())
        .sum();
    assert_eq!(trainable, 4_652_008);
    let fc = &tensors.iter().find(|(n, _)| n == "_fc.weight").unwrap().1;
    assert_eq!((fc.dims(), fc.dtype()), (&[1000, 1280][..], DType::F32));
}
