//! Properties every transform must keep: flips undo themselves, crops have the requested size
//! and come from the padded image, rotation by 0 changes nothing, normalisation inverts, noise
//! has the requested statistics, and one seed gives one output.

use ember_augment::{
    add_gaussian_noise, sample_rng, CenterCrop, ColorJitter, Cutout, GaussianNoise, Image, Interpolation, Normalize,
    PaddingMode, RandomCrop, RandomErasing, RandomHorizontalFlip, RandomResizedCrop, RandomRotation,
    RandomVerticalFlip, Resize, SaltAndPepper, ToTensor, Transform, TrivialAugmentWide,
};
use image::{GrayImage, Luma, Rgb, RgbImage};

fn rgb(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb([(x * 13 + y) as u8, (y * 29 + x * 3) as u8, (x * y + 7) as u8]))
}

fn grey_f32(w: u32, h: u32) -> Image<Luma<f32>> {
    Image::<Luma<f32>>::from_fn(w, h, |x, y| Luma([((x * 7 + y * 3) % 17) as f32 / 16.0]))
}

#[test]
fn flip_twice_is_identity() {
    let h = RandomHorizontalFlip::new(1.0).unwrap();
    let v = RandomVerticalFlip::new(1.0).unwrap();
    let rng = &mut sample_rng(0, 0, 0);
    for (w, ht) in [(12, 10), (1, 1), (7, 3)] {
        let img = rgb(w, ht);
        let once = h.apply(img.clone(), rng).unwrap();
        assert_eq!(once.get_pixel(0, 0), img.get_pixel(w - 1, 0));
        assert_eq!(h.apply(once, rng).unwrap(), img);
        let once = v.apply(img.clone(), rng).unwrap();
        assert_eq!(once.get_pixel(0, 0), img.get_pixel(0, ht - 1));
        assert_eq!(v.apply(once, rng).unwrap(), img);
        let g = grey_f32(w, ht);
        assert_eq!(h.apply(h.apply(g.clone(), rng).unwrap(), rng).unwrap(), g);
    }
}

#[test]
fn flip_with_probability_zero_never_flips_and_half_flips_about_half() {
    let img = rgb(5, 4);
    let never = RandomHorizontalFlip::new(0.0).unwrap();
    let half = RandomHorizontalFlip::new(0.5).unwrap();
    let mut flipped = 0;
    for i in 0..400 {
        assert_eq!(never.apply(img.clone(), &mut sample_rng(1, 0, i)).unwrap(), img);
        flipped += (half.apply(img.clone(), &mut sample_rng(1, 0, i)).unwrap() != img) as u32;
    }
    assert!((160..240).contains(&flipped), "{flipped}");
}

#[test]
fn random_crop_stays_inside_the_padded_image_for_every_padding_mode() {
    let src = rgb(9, 7);
    for mode in [PaddingMode::Zero, PaddingMode::Edge, PaddingMode::Reflect, PaddingMode::Symmetric] {
        // The crop as large as the padded image is the padded image.
        let padded = RandomCrop::new(9 + 6, 7 + 6).with_padding(3).with_padding_mode(mode);
        let padded = padded.apply(src.clone(), &mut sample_rng(0, 0, 0)).unwrap();
        let crop = RandomCrop::new(8, 6).with_padding(3).with_padding_mode(mode);
        let mut offsets = std::collections::BTreeSet::new();
        for i in 0..300 {
            let out = crop.apply(src.clone(), &mut sample_rng(2, 0, i)).unwrap();
            assert_eq!(out.dimensions(), (8, 6));
            let offset = (0..=15 - 8)
                .flat_map(|x| (0..=13 - 6).map(move |y| (x, y)))
                .find(|&(x, y)| out.enumerate_pixels().all(|(i, j, p)| padded.get_pixel(x + i, y + j) == p));
            offsets.insert(offset.unwrap_or_else(|| panic!("{mode:?}: not a window of the padded image")));
        }
        assert!(offsets.len() > 40, "{mode:?}: {} distinct offsets", offsets.len());
    }
}

#[test]
fn centre_and_resized_crops_have_the_requested_size() {
    let rng = &mut sample_rng(0, 0, 0);
    for (w, h) in [(5, 3), (12, 10), (20, 16)] {
        assert_eq!(CenterCrop::new(w, h).unwrap().apply(rgb(12, 10), rng).unwrap().dimensions(), (w, h));
        assert_eq!(Resize::new(w, h).unwrap().apply(grey_f32(12, 10), rng).unwrap().dimensions(), (w, h));
    }
    let rrc = RandomResizedCrop::new(24, 16).unwrap();
    for i in 0..50 {
        let out = rrc.apply(rgb(40, 30), &mut sample_rng(3, 0, i)).unwrap();
        assert_eq!(out.dimensions(), (24, 16));
    }
    // A constant image stays constant through any crop and resize.
    let flat = RgbImage::from_pixel(30, 20, Rgb([9, 99, 199]));
    let out = rrc.apply(flat, &mut sample_rng(3, 0, 0)).unwrap();
    assert!(out.pixels().all(|p| *p == Rgb([9, 99, 199])));
}

#[test]
fn rotation_by_zero_is_identity() {
    let rng = &mut sample_rng(0, 0, 0);
    for interpolation in [Interpolation::Nearest, Interpolation::Bilinear] {
        let rot = RandomRotation::new(0.0).unwrap().with_interpolation(interpolation).with_fill(50.0);
        let img = rgb(12, 10);
        assert_eq!(rot.apply(img.clone(), rng).unwrap(), img);
        let g = grey_f32(11, 9);
        let out = rot.apply(g.clone(), rng).unwrap();
        let err = out.as_raw().iter().zip(g.as_raw()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(err < 1e-6, "{interpolation:?}: {err}");
    }
}

#[test]
fn normalize_then_inverse_round_trips() {
    let n = Normalize::new(&[0.485, 0.456, 0.406], &[0.229, 0.224, 0.225]).unwrap();
    let img = Image::<Rgb<f32>>::from_fn(8, 6, |x, y| Rgb([x as f32 / 8.0, y as f32 / 6.0, 0.3]));
    let rng = &mut sample_rng(0, 0, 0);
    let normalized = n.apply(img.clone(), rng).unwrap();
    assert!((normalized.get_pixel(0, 0)[0] - (0.0 - 0.485) / 0.229).abs() < 1e-6);
    let back = n.inverse().apply(normalized, rng).unwrap();
    let err = back.as_raw().iter().zip(img.as_raw()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(err < 1e-6, "{err}");
}

#[test]
fn normalize_rejects_zero_std_and_mismatched_channels() {
    let err = Normalize::new(&[0.5], &[0.0]).unwrap_err();
    assert!(err.to_string().contains("normalize: std = 0"), "{err}");
    let two = Normalize::new(&[0.5, 0.5], &[0.2, 0.2]).unwrap();
    let err = two.apply(Image::<Rgb<f32>>::new(2, 2), &mut sample_rng(0, 0, 0)).unwrap_err();
    assert!(err.to_string().contains("normalize"), "{err}");
}

#[test]
fn to_tensor_is_channel_major_scaled_and_normalized() {
    let img = RgbImage::from_fn(3, 2, |x, y| Rgb([(x + 3 * y) as u8 * 50, 255, 0]));
    let plain = ToTensor::new().chw(&img).unwrap();
    assert_eq!(plain.len(), 18);
    assert_eq!(plain[..6], [0.0, 50.0 / 255.0, 100.0 / 255.0, 150.0 / 255.0, 200.0 / 255.0, 250.0 / 255.0]);
    assert!(plain[6..12].iter().all(|&v| v == 1.0) && plain[12..].iter().all(|&v| v == 0.0));
    let n = Normalize::new(&[0.5, 0.5, 0.5], &[0.5, 0.25, 0.5]).unwrap();
    let t = ToTensor::new().with_normalize(n).tensor(&img, &candle_core::Device::Cpu).unwrap();
    assert_eq!(t.dims(), &[3, 2, 3]);
    let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
    assert!((v[6] - 2.0).abs() < 1e-6 && (v[12] + 1.0).abs() < 1e-6);
}

fn mean_std(values: impl Iterator<Item = f64>) -> (f64, f64, usize) {
    let v: Vec<f64> = values.collect();
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, var.sqrt(), n)
}

#[test]
fn gaussian_noise_has_the_requested_mean_and_std() {
    let base = 0.5f32;
    let img = Image::<Rgb<f32>>::from_pixel(100, 80, Rgb([base; 3]));
    let noise = GaussianNoise::new(0.1).unwrap().with_mean(0.05).without_clip();
    let out = noise.apply(img, &mut sample_rng(4, 0, 0)).unwrap();
    let (mean, std, n) = mean_std(out.as_raw().iter().map(|&v| (v - base) as f64));
    // Four standard errors: of the mean 0.1 / sqrt(n), of the std about 0.1 / sqrt(2n).
    let n = n as f64;
    assert!((mean - 0.05).abs() < 4.0 * 0.1 / n.sqrt(), "mean {mean}");
    assert!((std - 0.1).abs() < 4.0 * 0.1 / (2.0 * n).sqrt(), "std {std}");

    // On u8 the units are grey levels: std 0.05 is 12.75 levels (mid-grey, so clipping is rare).
    let grey = GrayImage::from_pixel(150, 150, Luma([128]));
    let out = GaussianNoise::new(0.05).unwrap().apply(grey, &mut sample_rng(4, 0, 1)).unwrap();
    let (mean, std, _) = mean_std(out.as_raw().iter().map(|&v| v as f64 - 128.0));
    assert!(mean.abs() < 0.5 && (std - 12.75).abs() < 0.5, "u8 mean {mean} std {std}");

    // Batch-level noise.
    let x = candle_core::Tensor::zeros((16, 3, 20, 20), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
    let y = add_gaussian_noise(&x, 0.2, &mut sample_rng(4, 0, 2)).unwrap();
    let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
    let (mean, std, n) = mean_std(v.iter().map(|&v| v as f64));
    assert!(mean.abs() < 4.0 * 0.2 / (n as f64).sqrt() && (std - 0.2).abs() < 0.005, "batch mean {mean} std {std}");
}

#[test]
fn salt_and_pepper_hits_the_requested_fraction() {
    let img = GrayImage::from_pixel(100, 100, Luma([100]));
    let out = SaltAndPepper::new(0.2).unwrap().apply(img, &mut sample_rng(5, 0, 0)).unwrap();
    let salt = out.pixels().filter(|p| p[0] == 255).count();
    let pepper = out.pixels().filter(|p| p[0] == 0).count();
    assert!((800..1200).contains(&salt) && (800..1200).contains(&pepper), "{salt} {pepper}");
}

#[test]
fn erasing_and_cutout_zero_a_rectangle() {
    let img = RgbImage::from_pixel(32, 32, Rgb([200, 200, 200]));
    let erased = RandomErasing::new(1.0).unwrap().apply(img.clone(), &mut sample_rng(6, 0, 0)).unwrap();
    let zeros: Vec<(u32, u32)> =
        erased.enumerate_pixels().filter(|p| *p.2 == Rgb([0, 0, 0])).map(|p| (p.0, p.1)).collect();
    assert!(!zeros.is_empty());
    let (x0, x1) = (zeros.iter().map(|p| p.0).min().unwrap(), zeros.iter().map(|p| p.0).max().unwrap());
    let (y0, y1) = (zeros.iter().map(|p| p.1).min().unwrap(), zeros.iter().map(|p| p.1).max().unwrap());
    assert_eq!(zeros.len() as u32, (x1 - x0 + 1) * (y1 - y0 + 1), "not a rectangle");
    let cut = Cutout::new(8).unwrap().apply(img, &mut sample_rng(6, 0, 1)).unwrap();
    let n = cut.pixels().filter(|p| **p == Rgb([0, 0, 0])).count();
    assert!(n > 0 && n <= 64, "{n}");
}

#[test]
fn colour_jitter_leaves_grey_alone_under_saturation_and_hue_and_is_identity_at_zero() {
    let g = GrayImage::from_fn(10, 10, |x, y| Luma([(x * 20 + y) as u8]));
    let rng = &mut sample_rng(7, 0, 0);
    assert_eq!(ColorJitter::new(0.0, 0.0, 0.8, 0.5).unwrap().apply(g.clone(), rng).unwrap(), g);
    let img = rgb(10, 10);
    assert_eq!(ColorJitter::new(0.0, 0.0, 0.0, 0.0).unwrap().apply(img.clone(), rng).unwrap(), img);
    let jittered = ColorJitter::new(0.4, 0.4, 0.4, 0.1).unwrap().apply(img.clone(), rng).unwrap();
    assert_ne!(jittered, img);
    assert!(ColorJitter::new(0.0, 0.0, 0.0, 0.7).unwrap_err().to_string().contains("hue = 0.7"));
}

#[test]
fn trivial_augment_keeps_size_and_replays() {
    let t = TrivialAugmentWide::new();
    for i in 0..100 {
        let a = t.apply(rgb(16, 12), &mut sample_rng(8, 1, i)).unwrap();
        assert_eq!(a.dimensions(), (16, 12));
        assert_eq!(a, t.apply(rgb(16, 12), &mut sample_rng(8, 1, i)).unwrap());
        let g = t.apply(grey_f32(16, 12), &mut sample_rng(8, 1, i)).unwrap();
        assert!(g.as_raw().iter().all(|v| v.is_finite()));
    }
}

/// Real photos from `$EMBER_SHARED_DIR/images` through an ImageNet-style pipeline.
#[test]
fn shared_photos_survive_an_imagenet_pipeline_reproducibly() {
    let Some(dir) = std::env::var_os("EMBER_SHARED_DIR") else {
        eprintln!("skipping: EMBER_SHARED_DIR is not set");
        return;
    };
    let pipeline = ember_augment::Pipeline::parse("resized-crop:224,hflip,jitter:0.4:0.4:0.4:0.1,rotate:10").unwrap();
    for name in ["coffee.png", "astronaut.png"] {
        let path = std::path::Path::new(&dir).join("images").join(name);
        let photo = image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
        for i in 0..4 {
            let a = pipeline.apply(photo.clone(), &mut sample_rng(9, 0, i)).unwrap();
            assert_eq!(a.dimensions(), (224, 224));
            assert_eq!(a, pipeline.apply(photo.clone(), &mut sample_rng(9, 0, i)).unwrap());
        }
    }
}
