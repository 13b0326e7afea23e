//! Checkpoints: round trip, strict loading with errors naming file and tensor, atomic writes.

use candle_core::{DType, Device, Tensor};
use ember_layers::{Linear, ParamStore};
use ember_train::{checkpoint, Error};

fn model(seed: u64, out: usize) -> ParamStore {
    let store = ParamStore::new(seed, &Device::Cpu);
    Linear::new(4, out, true, store.var_builder(DType::F32).pp("fc")).unwrap();
    store
}

/// `model(seed, out)` saved as `name` in a fresh directory: the directory (removed on drop),
/// the checkpoint's path and the model.
fn saved_model(seed: u64, out: usize, name: &str) -> (tempfile::TempDir, std::path::PathBuf, ParamStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let store = model(seed, out);
    checkpoint::save(&store, &path).unwrap();
    (dir, path, store)
}

fn values(store: &ParamStore) -> Vec<Vec<f32>> {
    store.tensors().iter().map(|(_, t)| t.flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
}

#[test]
fn checkpoint_round_trips_every_parameter() {
    let (dir, path, a) = saved_model(1, 3, "model.safetensors");
    let b = model(2, 3);
    assert_ne!(values(&a), values(&b));
    checkpoint::load(&b, &path).unwrap();
    assert_eq!(values(&a), values(&b));
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn checkpoint_shape_mismatch_names_file_and_tensor_and_changes_nothing() {
    let (_dir, path, _) = saved_model(1, 5, "other.safetensors");
    let target = model(2, 3);
    let before = values(&target);
    let err = checkpoint::load(&target, &path).unwrap_err();
    match &err {
        Error::ShapeMismatch { name, expected, found, .. } => {
            assert_eq!(name, "fc.bias");
            assert_eq!((expected.as_slice(), found.as_slice()), ([3].as_slice(), [5].as_slice()));
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("other.safetensors"), "{err}");
    assert_eq!(values(&target), before);
}

#[test]
fn checkpoint_missing_and_unexpected_tensors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("partial.safetensors");
    let w = Tensor::zeros((3, 4), DType::F32, &Device::Cpu).unwrap();
    checkpoint::save_tensors(&[("fc.weight".into(), w.clone())], &path).unwrap();
    let err = checkpoint::load(&model(0, 3), &path).unwrap_err();
    assert!(matches!(&err, Error::MissingTensor { name, .. } if name == "fc.bias"), "{err}");

    let b = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
    checkpoint::save_tensors(&[("fc.weight".into(), w), ("fc.bias".into(), b.clone()), ("head.bias".into(), b)], &path)
        .unwrap();
    let err = checkpoint::load(&model(0, 3), &path).unwrap_err();
    assert!(matches!(&err, Error::UnexpectedTensor { name, .. } if name == "head.bias"), "{err}");
}

#[test]
fn checkpoint_that_is_not_safetensors_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "hello").unwrap();
    let err = checkpoint::load(&model(0, 3), &path).unwrap_err();
    assert!(matches!(err, Error::Checkpoint(ember_io::Error::UnreadableCheckpoint { .. })), "{err}");
    assert!(err.to_string().contains("notes.txt"), "{err}");
    let err = checkpoint::load(&model(0, 3), &dir.path().join("absent.safetensors")).unwrap_err();
    assert!(err.to_string().contains("absent.safetensors"), "{err}");
}

#[test]
fn failed_checkpoint_write_leaves_the_previous_file_intact() {
    let (dir, path, _) = saved_model(1, 3, "last.safetensors");
    let good = std::fs::read(&path).unwrap();
    let err = checkpoint::write_atomically(&path, |tmp| {
        std::fs::write(tmp, b"half a checkpoint").unwrap();
        Err(Error::Io(ember_io::IoError { path: tmp.to_path_buf(), source: std::io::Error::other("disk full") }))
    })
    .unwrap_err();
    // The OS's reason is the error's source (printed once, by whoever prints the chain).
    let source = std::error::Error::source(&err).map(|s| s.to_string()).unwrap_or_default();
    assert!(source.contains("disk full"), "{err}: {source}");
    assert_eq!(std::fs::read(&path).unwrap(), good);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "temporary file left behind");
}

#[test]
fn checkpoint_saves_and_restores_batch_norm_running_statistics() {
    use candle_nn::ModuleT;
    use ember_layers::{BatchNorm, BatchNormConfig};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bn.safetensors");
    let make = |seed| {
        let store = ParamStore::new(seed, &Device::Cpu);
        let bn = BatchNorm::new(&BatchNormConfig::new(3), store.var_builder(DType::F32).pp("bn")).unwrap();
        (store, bn)
    };
    let (store, bn) = make(0);
    let x = (Tensor::arange(0f32, 24., &Device::Cpu).unwrap().reshape((4, 3, 2)).unwrap() * 0.5).unwrap();
    bn.forward_t(&x, true).unwrap(); // updates running mean/var
    checkpoint::save(&store, &path).unwrap();
    let (fresh, fresh_bn) = make(1);
    checkpoint::load(&fresh, &path).unwrap();
    let mean = |s: &ParamStore| s.buffer("bn.running_mean").unwrap().to_vec1::<f32>().unwrap();
    assert_ne!(mean(&store), vec![0.0; 3], "train mode must have moved the running mean");
    assert_eq!(mean(&fresh), mean(&store));
    let a = bn.forward_t(&x, false).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = fresh_bn.forward_t(&x, false).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a, b, "eval output must come from the restored running statistics");
}

/// The state of `model(1, 3)` with `fc.weight` replaced by `weight`.
fn state_with_weight(weight: Tensor) -> Vec<(String, Tensor)> {
    let mut state = model(1, 3).state();
    state.iter_mut().find(|(n, _)| n == "fc.weight").unwrap().1 = weight;
    state
}

#[test]
fn writers_refuse_non_finite_tensors_and_keep_the_previous_file() {
    let (dir, path, _) = saved_model(1, 3, "model.safetensors");
    let before = std::fs::read(&path).unwrap();
    for bad in [f32::NAN, f32::INFINITY] {
        let weight = Tensor::full(bad, (3, 4), &Device::Cpu).unwrap();
        let err = checkpoint::save_tensors(&state_with_weight(weight), &path).unwrap_err();
        assert!(matches!(&err, Error::NonFiniteTensor { name, .. } if name == "fc.weight"), "{err}");
        assert!(err.to_string().contains("model.safetensors"), "{err}");
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "a temporary file was left behind");
}

#[test]
fn loaders_refuse_integer_and_non_finite_weights_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = model(2, 3);
    let before = values(&target);
    // Written around the writers' own check, as a foreign tool would.
    let write = |name: &str, weight: Tensor| {
        let path = dir.path().join(name);
        let map: std::collections::HashMap<String, Tensor> = state_with_weight(weight).into_iter().collect();
        candle_core::safetensors::save(&map, &path).unwrap();
        path
    };
    let ints = write("ints.safetensors", Tensor::ones((3, 4), DType::I64, &Device::Cpu).unwrap());
    let err = checkpoint::load(&target, &ints).unwrap_err();
    assert!(matches!(&err, Error::WrongDtype { name, found: DType::I64, .. } if name == "fc.weight"), "{err}");
    assert!(err.to_string().contains("ints.safetensors"), "{err}");
    let nan = write("nan.safetensors", Tensor::full(f32::NAN, (3, 4), &Device::Cpu).unwrap());
    let err = checkpoint::load(&target, &nan).unwrap_err();
    assert!(matches!(&err, Error::NonFiniteTensor { name, .. } if name == "fc.weight"), "{err}");
    assert_eq!(values(&target), before);
}

#[test]
fn a_directory_or_a_pytorch_file_given_as_a_checkpoint_says_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let err = checkpoint::load(&model(1, 3), dir.path()).unwrap_err().to_string();
    assert!(err.contains("is a directory"), "{err}");
    let pth = dir.path().join("model.pth");
    std::fs::write(&pth, b"PK\x03\x04 a zip archive, as torch.save writes").unwrap();
    let err = checkpoint::load(&model(1, 3), &pth).unwrap_err().to_string();
    assert!(err.contains("model.pth") && err.contains("PyTorch checkpoint") && err.contains("ember convert"), "{err}");
}

#[test]
fn a_write_failure_says_it_could_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("model.safetensors");
    let err = checkpoint::save(&model(1, 3), &path).unwrap_err();
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    assert!(!err.to_string().contains("not a readable"), "{err}");
}

#[test]
fn io_errors_name_the_file_once_and_keep_the_reason_as_their_source() {
    use std::error::Error as _;
    let err = checkpoint::load(&model(1, 3), std::path::Path::new("/no/such/model.safetensors")).unwrap_err();
    let top = err.to_string();
    let reason = err.source().map(|s| s.to_string()).unwrap_or_default();
    assert!(top.contains("/no/such/model.safetensors"), "{top}");
    assert!(!reason.is_empty() && !top.contains(&reason), "reason `{reason}` printed twice by `{top}` + its source");
}

#[test]
fn stale_temporaries_of_killed_writes_are_removed_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let own = format!(".last.safetensors.{}.tmp", std::process::id());
    let stale = [".resume.safetensors.4242.tmp", ".metrics.csv.7.tmp"];
    let kept = [".notes.tmp", "keep.tmp", ".x.abc.tmp", "..1.tmp", "resume.safetensors", own.as_str()];
    for name in stale.iter().chain(&kept) {
        std::fs::write(dir.path().join(name), b"complete but never committed").unwrap();
    }
    std::fs::create_dir(dir.path().join("tensorboard")).unwrap();
    std::fs::write(dir.path().join("tensorboard/.a.1.tmp"), b"").unwrap();

    let removed = checkpoint::remove_stale_temporaries(dir.path()).unwrap();
    let mut expected: Vec<_> = stale.iter().map(|n| dir.path().join(n)).collect();
    expected.sort();
    assert_eq!(removed, expected);
    for name in stale {
        assert!(!dir.path().join(name).exists(), "{name} left behind");
    }
    for name in kept {
        assert!(dir.path().join(name).exists(), "{name} removed");
    }
    assert!(dir.path().join("tensorboard/.a.1.tmp").exists(), "only the run directory itself is cleaned");
}
