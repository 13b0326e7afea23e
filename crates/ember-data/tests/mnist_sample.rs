//! The bundled MNIST sample and, when the shared assets are available, the full files.

#[path = "../../ember-io/tests/support/test_env.rs"]
mod test_env;

use test_env::shared_dir;

use ember_data::{load_mnist_family, mnist_sample, KnownDataset, Split};

#[test]
fn bundled_sample_has_6000_train_and_2000_test_digits_of_every_class() {
    let train = mnist_sample(Split::Train).unwrap();
    let test = mnist_sample(Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (6000, 2000));
    assert_eq!((train.height(), train.width(), train.classes()), (28, 28, 10));
    for counts in [train.class_counts(), test.class_counts()] {
        // Every digit is present in a plausible share (MNIST is roughly balanced).
        let n: usize = counts.iter().sum();
        assert!(counts.iter().all(|&c| c * 100 > n * 7 && c * 100 < n * 14), "{counts:?}");
    }
    // Real digits: dark background, bright strokes, centred mass.
    let img = train.pixels(0);
    assert_eq!(img[0], 0);
    assert!(img.iter().filter(|&&p| p > 128).count() > 40);
}

#[test]
fn known_dataset_names_parse_and_unknown_names_are_listed() {
    assert_eq!("fashion-mnist".parse::<KnownDataset>().unwrap(), KnownDataset::FashionMnist);
    let err = "cifar-11".parse::<KnownDataset>().unwrap_err().to_string();
    assert!(err.contains("cifar-11") && err.contains("mnist-sample"), "{err}");
}

/// The shared assets directory (`EMBER_SHARED_DIR`), or `None` after printing one skip line:
/// plain `cargo test` on a fresh clone passes, and `cargo xtask ci` reports the skip loudly.
#[test]
fn shared_bundled_sample_equals_the_shared_copy() {
    let Some(shared) = shared_dir() else { return };
    let dir = shared.join("data/mnist-sample");
    for split in [Split::Train, Split::Test] {
        assert_eq!(load_mnist_family(&dir, split).unwrap(), mnist_sample(split).unwrap());
    }
}

#[test]
fn shared_full_fashion_mnist_parses_with_balanced_classes() {
    let Some(shared) = shared_dir() else { return };
    let dir = shared.join("data/fashion-mnist");
    let train = load_mnist_family(&dir, Split::Train).unwrap();
    let test = load_mnist_family(&dir, Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!(train.class_counts(), vec![6000; 10]);
    assert_eq!(test.class_counts(), vec![1000; 10]);
}
