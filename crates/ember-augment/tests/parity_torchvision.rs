//! Deterministic transforms against torchvision v2 on committed fixtures
//! (`fixtures/gen_transforms.py`): within 1 grey level on `u8`, 1e-5 on `f32`.

use ember_augment::{
    sample_rng, Affine, CenterCrop, GaussianBlur, Image, Interpolation, Normalize, PaddingMode, RandomCrop,
    RandomHorizontalFlip, RandomVerticalFlip, Resize, Sample, SamplePixel, Transform,
};
use image::{Luma, Pixel, Rgb};
use serde_json::Value;

fn base64_decode(text: &str) -> Vec<u8> {
    let digit = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("bad base64 {c}"),
    } as u32;
    let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= digit(c) << (18 - 6 * i);
        }
        out.extend(acc.to_be_bytes()[1..chunk.len()].iter());
    }
    out
}

/// `(width, height, channels, values as f32)` of a fixture image.
fn decode(v: &Value, float: bool) -> (u32, u32, usize, Vec<f32>) {
    let raw = base64_decode(v["data"].as_str().unwrap());
    let values = if float {
        raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    } else {
        raw.iter().map(|&b| b as f32).collect()
    };
    (
        v["width"].as_u64().unwrap() as u32,
        v["height"].as_u64().unwrap() as u32,
        v["channels"].as_u64().unwrap() as usize,
        values,
    )
}

fn image<P: SamplePixel>(w: u32, h: u32, values: &[f32]) -> Image<P> {
    Image::<P>::from_raw(w, h, values.iter().map(|&v| <P::Subpixel as Sample>::from_f32(v)).collect()).unwrap()
}

fn interpolation(name: &str) -> Interpolation {
    match name {
        "nearest" => Interpolation::Nearest,
        "bilinear" => Interpolation::Bilinear,
        "bicubic" => Interpolation::Bicubic,
        other => panic!("{other}"),
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

/// Runs one fixture case through ember; `None` for cases this image type does not take.
fn run<P: SamplePixel>(input: Image<P>, op: &str, p: &Value) -> Option<Vec<f32>> {
    let rng = &mut sample_rng(0, 0, 0);
    let (w, h) = input.dimensions();
    let out: Image<P> = match op {
        "resize" => Resize::new(p["width"].as_u64()? as u32, p["height"].as_u64()? as u32)
            .unwrap()
            .with_interpolation(interpolation(p["interpolation"].as_str()?))
            .apply(input, rng)
            .unwrap(),
        "center_crop" => CenterCrop::new(p["width"].as_u64()? as u32, p["height"].as_u64()? as u32)
            .unwrap()
            .apply(input, rng)
            .unwrap(),
        "pad" => {
            // A crop as large as the padded image has one position: the padded image itself.
            let pad = p["padding"].as_u64()? as u32;
            let mode = match p["mode"].as_str()? {
                "constant" => PaddingMode::Zero,
                "edge" => PaddingMode::Edge,
                "reflect" => PaddingMode::Reflect,
                _ => PaddingMode::Symmetric,
            };
            RandomCrop::new(w + 2 * pad, h + 2 * pad)
                .with_padding(pad)
                .with_padding_mode(mode)
                .apply(input, rng)
                .unwrap()
        }
        "hflip" => RandomHorizontalFlip::new(1.0).unwrap().apply(input, rng).unwrap(),
        "vflip" => RandomVerticalFlip::new(1.0).unwrap().apply(input, rng).unwrap(),
        "rotate" => Affine::rotation(f(&p["angle"]))
            .with_interpolation(interpolation(p["interpolation"].as_str()?))
            .with_fill(f(&p["fill"]) as f32)
            .apply(input, rng)
            .unwrap(),
        "affine" => {
            let t = &p["translate"];
            let s = &p["shear"];
            Affine::new(f(&p["angle"]), (f(&t[0]), f(&t[1])), f(&p["scale"]), (f(&s[0]), f(&s[1])))
                .unwrap()
                .with_interpolation(interpolation(p["interpolation"].as_str()?))
                .with_fill(f(&p["fill"]) as f32)
                .apply(input, rng)
                .unwrap()
        }
        "gaussian_blur" => {
            let sigma = f(&p["sigma"]);
            GaussianBlur::new(p["kernel_size"].as_u64()? as u32)
                .unwrap()
                .with_sigma(sigma, sigma)
                .unwrap()
                .apply(input, rng)
                .unwrap()
        }
        _ => return None,
    };
    Some(out.as_raw().iter().map(|v| v.as_f32()).collect())
}

fn normalize<P: Pixel<Subpixel = f32>>(input: Image<P>, p: &Value) -> Vec<f32> {
    let floats = |v: &Value| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect::<Vec<_>>();
    let n = Normalize::new(&floats(&p["mean"]), &floats(&p["std"])).unwrap();
    n.apply(input, &mut sample_rng(0, 0, 0)).unwrap().into_raw()
}

/// Checks every case of one fixture file; returns `(op, max error)` per case.
fn check_fixture(name: &str) -> Vec<(String, f32)> {
    let path = format!("{}/tests/fixtures/transforms_{name}.json", env!("CARGO_MANIFEST_DIR"));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let float = name.ends_with("f32");
    let (w, h, c, values) = decode(&doc["input"], float);
    let tolerance = if float { 1e-5 } else { 1.0 };
    let mut report = Vec::new();
    for case in doc["cases"].as_array().unwrap() {
        let op = case["op"].as_str().unwrap();
        let p = &case["params"];
        let (ew, eh, ec, expected) = decode(&case["output"], float);
        let got = match (c, float, op) {
            (3, true, "normalize") => normalize(image::<Rgb<f32>>(w, h, &values), p),
            (1, true, "normalize") => normalize(image::<Luma<f32>>(w, h, &values), p),
            (3, false, _) => run(image::<Rgb<u8>>(w, h, &values), op, p).unwrap(),
            (1, false, _) => run(image::<Luma<u8>>(w, h, &values), op, p).unwrap(),
            (3, true, _) => run(image::<Rgb<f32>>(w, h, &values), op, p).unwrap(),
            _ => run(image::<Luma<f32>>(w, h, &values), op, p).unwrap(),
        };
        assert_eq!(ec, c);
        assert_eq!(got.len(), (ew * eh) as usize * ec, "{name} {op} {p}: size");
        let err = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(err <= tolerance, "{name} {op} {p}: max error {err} > {tolerance}");
        report.push((format!("{op} {p}"), err));
    }
    for (case, err) in &report {
        eprintln!("{name:8} {err:10.3e}  {case}");
    }
    report
}

#[test]
fn transforms_match_torchvision_on_grey_and_rgb_u8_and_f32() {
    // Every fixture's cases are checked (an f32 image also takes `normalize`).
    for (fixture, cases) in [("rgb_u8", 26), ("grey_u8", 26), ("rgb_f32", 27), ("grey_f32", 27)] {
        assert_eq!(check_fixture(fixture).len(), cases, "{fixture}");
    }
}
