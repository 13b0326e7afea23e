//! Mixup and cutmix: soft labels that sum to one and match how much of each image was mixed in.

use candle_core::{Device, Tensor};
use ember_augment::{sample_rng, CutMix, MixUp};
use rand::rngs::StdRng;

fn batch() -> (Tensor, Tensor) {
    // Image i is constant i + 1, so each output pixel tells which images were mixed.
    let b = 4;
    let values: Vec<f32> = (0..b).flat_map(|i| vec![(i + 1) as f32; 2 * 8 * 6]).collect();
    let images = Tensor::from_vec(values, (b, 2, 8, 6), &Device::Cpu).unwrap();
    let labels = Tensor::new(&[0u32, 1, 2, 3], &Device::Cpu).unwrap();
    (images, labels)
}

/// Ten mixed batches (RNGs `sample_rng(seed, 0, 0..10)`) as (pixels, soft labels), each
/// checked to keep the batch's shape and to give every image soft labels that sum to one.
fn mixed(
    seed: u64,
    mix: impl Fn(&Tensor, &Tensor, &mut StdRng) -> ember_augment::Result<(Tensor, Tensor)>,
) -> Vec<(Vec<f32>, Vec<Vec<f32>>)> {
    let (images, labels) = batch();
    (0..10)
        .map(|i| {
            let (x, y) = mix(&images, &labels, &mut sample_rng(seed, 0, i)).unwrap();
            assert_eq!(x.dims(), images.dims());
            let y: Vec<Vec<f32>> = y.to_vec2().unwrap();
            for probs in &y {
                assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            }
            (x.flatten_all().unwrap().to_vec1().unwrap(), y)
        })
        .collect()
}

#[test]
fn mixup_blends_each_image_with_its_neighbour_by_the_label_weight() {
    let mixup = MixUp::new(0.4, 5).unwrap();
    for (x, y) in mixed(0, |images, labels, rng| mixup.apply(images, labels, rng)) {
        for (row, probs) in y.iter().enumerate() {
            let lam = probs[row];
            let prev = (row + 3) % 4;
            let expected = lam * (row + 1) as f32 + (1.0 - lam) * (prev + 1) as f32;
            assert!((x[row * 96] - expected).abs() < 1e-5, "{} vs {expected}", x[row * 96]);
        }
    }
}

#[test]
fn cutmix_label_weights_equal_the_pasted_area() {
    let cutmix = CutMix::new(1.0, 4).unwrap();
    for (x, y) in mixed(1, |images, labels, rng| cutmix.apply(images, labels, rng)) {
        for (row, probs) in y.iter().enumerate() {
            let own = x[row * 96..(row + 1) * 96].iter().filter(|&&v| v == (row + 1) as f32).count();
            assert!((probs[row] - own as f32 / 96.0).abs() < 1e-6, "{} vs {own}/96", probs[row]);
        }
    }
}

#[test]
fn mixing_rejects_bad_alpha_and_labels() {
    assert!(MixUp::new(0.0, 10).unwrap_err().to_string().contains("mixup: alpha = 0"));
    let (images, _) = batch();
    let labels = Tensor::new(&[0u32, 1, 9, 3], &Device::Cpu).unwrap();
    let err = CutMix::new(1.0, 4).unwrap().apply(&images, &labels, &mut sample_rng(0, 0, 0)).unwrap_err();
    assert!(err.to_string().contains("cutmix: label = 9"), "{err}");
}
