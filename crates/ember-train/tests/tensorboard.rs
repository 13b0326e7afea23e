//! TensorBoard event files: CRC-checked round trip in Rust, and (when a Python with the
//! `tensorboard` package is named by `EMBER_PYTHON`) TensorBoard's own reader.

#[path = "../../ember-io/tests/support/test_env.rs"]
mod test_env;

use ember_train::tensorboard::{read_events, TensorBoardWriter};

fn write_sample(dir: &std::path::Path) -> std::path::PathBuf {
    let mut w = TensorBoardWriter::create(dir).unwrap();
    for step in 1..=5u64 {
        w.scalar("train/loss", step, 1.0 / step as f64).unwrap();
    }
    w.scalar("epoch/val_accuracy", 1, 0.875).unwrap();
    let png = ember_train::plots::png_bytes(vec![200u8; 4 * 3 * 3], 4, 3).unwrap();
    w.image("epoch/confusion_matrix", 1, &png, 4, 3, 3).unwrap();
    w.flush().unwrap();
    w.path().to_path_buf()
}

#[test]
fn event_file_round_trips_through_the_crc_checked_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_sample(dir.path());
    assert!(path.file_name().unwrap().to_string_lossy().starts_with("events.out.tfevents."));
    let events = read_events(&path).unwrap();
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
    let losses: Vec<(u64, f32)> = events
        .iter()
        .flat_map(|e| e.scalars.iter().filter(|(t, _)| t == "train/loss").map(move |(_, v)| (e.step, *v)))
        .collect();
    assert_eq!(losses, (1..=5u64).map(|s| (s, (1.0 / s as f64) as f32)).collect::<Vec<_>>());
    let images: Vec<_> = events.iter().flat_map(|e| e.images.iter()).collect();
    assert_eq!(images.len(), 1);
    assert_eq!((images[0].1, images[0].2), (4, 3));
    assert!(images[0].3.starts_with(b"\x89PNG"));

    // Flipping one byte of a payload is caught by the CRC.
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let err = read_events(&path).unwrap_err().to_string();
    assert!(err.contains("CRC"), "{err}");
}

#[test]
fn python_tensorboard_reader_reads_the_same_scalars() {
    let Some(python) = test_env::python("EMBER_PYTHON", "a python with the tensorboard package") else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = write_sample(dir.path());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/read_tensorboard.py");
    let out = std::process::Command::new(python).arg(script).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let losses = v["scalars"]["train/loss"].as_array().unwrap();
    assert_eq!(losses.len(), 5);
    for (i, pair) in losses.iter().enumerate() {
        assert_eq!(pair[0].as_u64().unwrap(), i as u64 + 1);
        assert!((pair[1].as_f64().unwrap() - 1.0 / (i as f64 + 1.0)).abs() < 1e-6);
    }
    assert_eq!(v["scalars"]["epoch/val_accuracy"][0][1].as_f64().unwrap(), 0.875);
    assert_eq!(v["images"]["epoch/confusion_matrix"][0], serde_json::json!([1, 4, 3]));
}

#[test]
fn reader_rejects_a_record_length_past_the_end_of_memory_naming_the_file() {
    // A record whose length (with a valid CRC) is near u64::MAX: the end offset must not wrap.
    let dir = tempfile::tempdir().unwrap();
    for len in [u64::MAX - 5, u64::MAX, 1 << 40] {
        let mut bytes = len.to_le_bytes().to_vec();
        bytes.extend(ember_train::tensorboard::masked_crc32c(&len.to_le_bytes()).to_le_bytes());
        bytes.extend([0u8; 8]);
        let path = dir.path().join("events.out.tfevents.hostile");
        std::fs::write(&path, &bytes).unwrap();
        let err = read_events(&path).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}: ", path.display())), "{err}");
        assert!(err.contains(&format!("record at byte 0: truncated payload (length {len})")), "{err}");
    }
}

#[test]
fn reopened_event_file_is_cut_back_to_the_committed_length() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = TensorBoardWriter::create(dir.path()).unwrap();
    w.scalar("train/loss", 1, 0.5).unwrap();
    w.sync().unwrap();
    let (path, committed) = (w.path().to_path_buf(), w.bytes_written());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), committed);
    // Events after the commit, then half a record, as a kill mid-write leaves them.
    w.scalar("train/loss", 2, 0.4).unwrap();
    w.flush().unwrap();
    drop(w);
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut f, &[7u8; 9]).unwrap();
    assert!(read_events(&path).is_err(), "a torn record is detected");

    let mut w = TensorBoardWriter::reopen(&path, committed).unwrap();
    w.scalar("train/loss", 2, 0.25).unwrap();
    w.flush().unwrap();
    let steps: Vec<(u64, f32)> =
        read_events(&path).unwrap().iter().flat_map(|e| e.scalars.iter().map(move |(_, v)| (e.step, *v))).collect();
    assert_eq!(steps, [(1, 0.5), (2, 0.25)]);

    let err = TensorBoardWriter::reopen(&path, 1 << 20).unwrap_err().to_string();
    assert!(err.contains("were committed"), "{err}");
}
