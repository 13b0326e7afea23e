//! The downloader against a loopback HTTP server this test starts: success, checksum mismatch,
//! server errors, interrupted transfers; never a partial or wrong file at the destination.
#![cfg(feature = "download")]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ember_data::{download, sha256_of, Error, KnownDataset, ATTEMPTS};

/// What the server does for one request.
#[derive(Clone)]
enum Reply {
    Ok(Vec<u8>),
    Status(u16),
    /// Announces the whole body but sends only the first `n` bytes, then closes.
    Cut(Vec<u8>, usize),
}

/// Serves `replies` in order (one per connection) on 127.0.0.1; returns the base address and the
/// request paths seen. The thread ends after the last reply.
fn serve(replies: Vec<Reply>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for reply in replies {
            let Ok((mut stream, _)) = listener.accept() else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            log.lock().unwrap().push(request_line.split_whitespace().nth(1).unwrap_or("").to_string());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
            }
            let _ = match reply {
                Reply::Ok(body) => stream
                    .write_all(
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                            .as_bytes(),
                    )
                    .and_then(|()| stream.write_all(&body)),
                Reply::Status(code) => stream.write_all(
                    format!("HTTP/1.1 {code} Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
                ),
                Reply::Cut(body, n) => stream
                    .write_all(
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                            .as_bytes(),
                    )
                    .and_then(|()| stream.write_all(&body[..n])),
            };
            let _ = stream.flush();
        }
    });
    (base, seen)
}

fn payload() -> (Vec<u8>, String) {
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    std::fs::write(&p, &body).unwrap();
    (body, sha256_of(&p).unwrap())
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn download_writes_the_checked_file() {
    let (body, sha) = payload();
    let (base, seen) = serve(vec![Reply::Ok(body.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("data.gz");
    let mut last = (0, None);
    let attempts = download(&format!("{base}/files/data.gz"), &dest, &sha, &mut |d, t| last = (d, t)).unwrap();
    assert_eq!(attempts, 1);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(last, (200_000, Some(200_000)));
    assert_eq!(seen.lock().unwrap().as_slice(), ["/files/data.gz"]);
    assert_eq!(leftovers(dir.path()), vec!["data.gz"]);
}

#[test]
fn download_with_wrong_checksum_deletes_the_file_and_says_so() {
    let (body, _) = payload();
    let (base, _) = serve(vec![Reply::Ok(body)]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("data.gz");
    let wrong = "0".repeat(64);
    let err = download(&format!("{base}/data.gz"), &dest, &wrong, &mut |_, _| {}).unwrap_err();
    assert!(matches!(&err, Error::ChecksumMismatch { expected, .. } if *expected == wrong), "{err}");
    assert!(err.to_string().contains("deleted"));
    assert!(leftovers(dir.path()).is_empty(), "{:?}", leftovers(dir.path()));
}

#[test]
fn download_reports_server_errors_after_retrying() {
    let (_, sha) = payload();
    let (base, seen) = serve(vec![Reply::Status(500); ATTEMPTS]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("data.gz");
    std::fs::write(&dest, b"previous good copy").unwrap();
    let err = download(&format!("{base}/data.gz"), &dest, &sha, &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, Error::Download { .. }) && err.to_string().contains("500"), "{err}");
    assert_eq!(seen.lock().unwrap().len(), ATTEMPTS);
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        b"previous good copy",
        "a failed download must not touch the existing file"
    );
    assert_eq!(leftovers(dir.path()), vec!["data.gz"]);
}

#[test]
fn interrupted_transfer_is_retried_cleanly() {
    let (body, sha) = payload();
    let (base, seen) = serve(vec![Reply::Cut(body.clone(), 70_000), Reply::Ok(body.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("data.gz");
    let attempts = download(&format!("{base}/data.gz"), &dest, &sha, &mut |_, _| {}).unwrap();
    assert_eq!(attempts, 2);
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(leftovers(dir.path()), vec!["data.gz"]);
}

#[test]
fn transfer_interrupted_every_time_fails_without_leaving_a_partial_file() {
    let (body, sha) = payload();
    let (base, _) = serve(vec![Reply::Cut(body, 1000); ATTEMPTS]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("data.gz");
    let err = download(&format!("{base}/data.gz"), &dest, &sha, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("interrupted"), "{err}");
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn known_dataset_download_checks_every_file_against_its_published_checksum() {
    // A mirror serving the wrong bytes: the first file fails its SHA-256 and nothing is kept.
    let (base, seen) = serve(vec![Reply::Ok(b"not fashion-mnist".to_vec())]);
    let dir = tempfile::tempdir().unwrap();
    let err = KnownDataset::FashionMnist.download_to(dir.path(), Some(&base), &mut |_, _, _| {}).unwrap_err();
    assert!(matches!(&err, Error::ChecksumMismatch { expected, .. } if expected.starts_with("08dc20ab")), "{err}");
    assert_eq!(seen.lock().unwrap().as_slice(), ["/train-images-idx3-ubyte.gz"]);
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn missing_dataset_error_says_where_to_put_which_files() {
    // Point the cache and data directories at an empty place (no other test in this binary
    // reads them); `load` never downloads.
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("EMBER_HOME", home.path());
    std::env::set_var("EMBER_DATA_DIR", home.path());
    assert!(!Path::new("/usr/share/datasets/mnist").exists(), "this machine has MNIST installed system-wide");
    let err = KnownDataset::Mnist.load(None, ember_data::Split::Train).unwrap_err().to_string();
    assert!(err.contains("dataset `mnist` not found"), "{err}");
    assert!(err.contains("train-images-idx3-ubyte.gz") && err.contains("--data-dir"), "{err}");
    assert!(err.contains("/usr/share/datasets/mnist"), "{err}");
    assert!(err.contains(&home.path().join("datasets").join("mnist").display().to_string()), "{err}");
}
