//! The pipeline parser: every op parses, errors name the bad token, and a parsed pipeline
//! replays exactly from `(seed, epoch, index)`.

use ember_augment::{sample_rng, Error, Image, Pipeline, Transform, OP_NAMES};
use image::{GrayImage, Luma, Rgb, RgbImage};

const EVERYTHING: &str = "pad-crop:4:reflect, crop:20x18, center-crop:18, resize:24x20:bicubic, resize-short:22, \
    resized-crop:20:0.5:1, hflip, vflip:0.3, rotate:10, affine:10:0.1:0.1:5, jitter:0.4:0.4:0.4:0.1, \
    gray:0.2, blur:3, noise:0.05, salt-pepper:0.02, erase, cutout:4, trivial, hflip|vflip|none, rotate:30@0.5";

#[test]
fn pipeline_parses_every_op_and_replays_from_the_seed() {
    let pipeline = Pipeline::parse(EVERYTHING).unwrap();
    for name in OP_NAMES {
        assert!(EVERYTHING.contains(name), "{name} untested");
    }
    let rgb = RgbImage::from_fn(28, 24, |x, y| Rgb([(x * 9) as u8, (y * 10) as u8, 128]));
    let grey = Image::<Luma<f32>>::from_fn(28, 24, |x, y| Luma([(x + y) as f32 / 52.0]));
    let a = pipeline.apply(rgb.clone(), &mut sample_rng(1, 2, 3)).unwrap();
    assert_eq!(a.dimensions(), (20, 20));
    assert_eq!(a, pipeline.apply(rgb.clone(), &mut sample_rng(1, 2, 3)).unwrap());
    assert!((0..10).any(|i| pipeline.apply(rgb.clone(), &mut sample_rng(1, 2, 4 + i)).unwrap() != a));
    let g = pipeline.apply(grey.clone(), &mut sample_rng(1, 2, 3)).unwrap();
    assert_eq!(g, pipeline.apply(grey, &mut sample_rng(1, 2, 3)).unwrap());
}

#[test]
fn pipeline_none_and_empty_are_identity() {
    let img = GrayImage::from_fn(5, 5, |x, y| Luma([(x * 5 + y) as u8]));
    for text in ["", "none", " none , "] {
        let p = Pipeline::parse(text).unwrap();
        assert!(p.is_identity());
        assert_eq!(p.apply(img.clone(), &mut sample_rng(0, 0, 0)).unwrap(), img);
    }
}

#[test]
fn pipeline_pad_crop_matches_random_crop() {
    let img = GrayImage::from_fn(28, 28, |x, y| Luma([(x * 9 + y) as u8]));
    let parsed = Pipeline::parse("pad-crop:4").unwrap();
    let crop = ember_augment::RandomCrop::new(28, 28).with_padding(4);
    for i in 0..20 {
        assert_eq!(
            parsed.apply(img.clone(), &mut sample_rng(5, 0, i)).unwrap(),
            crop.apply(img.clone(), &mut sample_rng(5, 0, i)).unwrap()
        );
    }
}

fn bad(text: &str) -> (String, String) {
    match Pipeline::parse(text).unwrap_err() {
        Error::BadOp { token, reason } => (token, reason),
        other => panic!("{other}"),
    }
}

#[test]
fn pipeline_errors_name_the_bad_token() {
    // (text, the token named when it is not the whole text, what the reason says)
    let cases: [(&str, Option<&str>, &[&str]); 7] = [
        ("pad-crop:4,wobble:3,hflip", Some("wobble:3"), &["unknown op `wobble`", "pad-crop"]),
        ("hflip:2", Some("hflip:2"), &["horizontal flip: p = 2"]),
        ("pad-crop:x", Some("pad-crop:x"), &["`x` is not a valid padding"]),
        ("pad-crop:2:mirror", None, &["unknown padding mode `mirror`"]),
        ("noise", None, &["expected `noise:STD`"]),
        ("hflip|blur:4", Some("blur:4"), &["kernel_size = 4"]),
        ("rotate:10@1.5", None, &["probability 1.5"]),
    ];
    for (text, expected_token, needles) in cases {
        let (token, reason) = bad(text);
        if let Some(expected) = expected_token {
            assert_eq!(token, expected, "{text}");
        }
        for needle in needles {
            assert!(reason.contains(needle), "{text}: {reason}");
        }
    }
    let err = Pipeline::parse("resize:0x4").unwrap_err().to_string();
    assert_eq!(err, "pipeline: bad op `resize:0x4`: resize: size = 0x4 is invalid (expected a positive size)");
}

#[test]
fn resize_short_keeps_the_aspect_like_torchvision_resize_int() {
    use ember_augment::ResizeShorter;
    // torchvision: Resize(256) on 500x375 gives 341x256 (the longer side truncated).
    let r = ResizeShorter::new(256).unwrap();
    assert_eq!(r.output_size(500, 375).unwrap(), (341, 256));
    assert_eq!(r.output_size(375, 500).unwrap(), (256, 341));
    assert_eq!(r.output_size(256, 256).unwrap(), (256, 256));
    // A 20000x1 strip would become 5,120,000x256 pixels: refused, not allocated.
    assert!(r.output_size(20000, 1).unwrap_err().to_string().contains("20000x1"));
    assert!(r.output_size(0, 5).is_err());
    let img = RgbImage::from_fn(50, 30, |x, y| Rgb([x as u8, y as u8, 7]));
    let out = Pipeline::parse("resize-short:15").unwrap().apply(img, &mut sample_rng(0, 0, 0)).unwrap();
    assert_eq!(out.dimensions(), (25, 15));
}
