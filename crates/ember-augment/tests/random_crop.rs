//! Random crop: size, placement inside the padded image, reproducibility.

use ember_augment::{sample_rng, Error, RandomCrop, Transform};
use image::{GrayImage, Luma, Rgb, RgbImage};

fn numbered(w: u32, h: u32) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| Luma([(1 + x + y * w) as u8]))
}

#[test]
fn random_crop_keeps_output_size() {
    let crop = RandomCrop::new(28, 28).with_padding(2);
    for i in 0..50 {
        let out = crop.apply(numbered(28, 28), &mut sample_rng(1, 0, i)).unwrap();
        assert_eq!(out.dimensions(), (28, 28));
    }
}

#[test]
fn random_crop_is_a_shifted_window_of_the_zero_padded_image() {
    let src = numbered(10, 8);
    let crop = RandomCrop::new(10, 8).with_padding(2);
    let mut shifts = std::collections::BTreeSet::new();
    for i in 0..200 {
        let out = crop.apply(src.clone(), &mut sample_rng(3, 1, i)).unwrap();
        // Find the shift from where source pixel (0, 0) (value 1) landed, or infer it.
        let (dx, dy) = (-2..=2)
            .flat_map(|dx| (-2..=2).map(move |dy| (dx, dy)))
            .find(|&(dx, dy)| {
                out.enumerate_pixels().all(|(x, y, p)| {
                    let (sx, sy) = (x as i32 + dx, y as i32 + dy);
                    let expected = if sx >= 0 && sy >= 0 && sx < 10 && sy < 8 {
                        src.get_pixel(sx as u32, sy as u32)[0]
                    } else {
                        0
                    };
                    p[0] == expected
                })
            })
            .expect("output is not a window of the padded image");
        shifts.insert((dx, dy));
    }
    // Every one of the 25 possible offsets shows up over 200 draws.
    assert_eq!(shifts.len(), 25);
}

#[test]
fn random_crop_same_seed_same_output_different_index_differs() {
    let crop = RandomCrop::new(28, 28).with_padding(4);
    let a = crop.apply(numbered(28, 28), &mut sample_rng(9, 2, 5)).unwrap();
    let b = crop.apply(numbered(28, 28), &mut sample_rng(9, 2, 5)).unwrap();
    assert_eq!(a, b);
    let differs = (0..20).any(|i| crop.apply(numbered(28, 28), &mut sample_rng(9, 2, 100 + i)).unwrap() != a);
    assert!(differs);
}

#[test]
fn random_crop_works_on_rgb() {
    let img = RgbImage::from_pixel(16, 12, Rgb([10, 20, 30]));
    let out = RandomCrop::new(8, 8).apply(img, &mut sample_rng(0, 0, 0)).unwrap();
    assert_eq!(out.dimensions(), (8, 8));
    assert!(out.pixels().all(|p| *p == Rgb([10, 20, 30])));
}

#[test]
fn random_crop_rejects_a_crop_larger_than_the_padded_image() {
    let err = RandomCrop::new(40, 28).with_padding(2).apply(numbered(28, 28), &mut sample_rng(0, 0, 0)).unwrap_err();
    assert!(matches!(err, Error::CropTooLarge { crop_w: 40, padded_w: 32, .. }), "{err}");
}
