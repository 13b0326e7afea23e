//! The hashed weights of `tests/fixtures/gen_resnet18_parity.py`, reproduced bit for bit (its
//! docstring states the formula), and the ResNet-18 reference it recorded. Shared by
//! ember-finetune's `resnet18_parity` and `timm_preset` tests and ember-cli's `predict_parity`
//! test (`#[path]`).
#![allow(dead_code)] // Each test binary uses a part.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

/// The fixtures directory of ember-finetune.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ember-finetune/tests/fixtures")
}

/// What the script recorded: the state dict's keys and shapes, the probabilities and the top 5.
pub struct Reference {
    pub keys: Vec<(String, Vec<usize>)>,
    pub probabilities: Vec<f32>,
    pub top5: Vec<(usize, f32)>,
    /// The 300x200 test image.
    pub image: PathBuf,
    /// torchvision's 224x224 8-bit crop of it (after `Resize(256)`, `CenterCrop(224)`).
    pub crop: PathBuf,
}

pub fn reference() -> Reference {
    let text = std::fs::read_to_string(fixtures().join("resnet18_parity.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys = json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let shape = k[1].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
            (k[0].as_str().unwrap().to_string(), shape)
        })
        .collect();
    let floats = |v: &serde_json::Value| v.as_f64().unwrap() as f32;
    let probabilities = json["probabilities"].as_array().unwrap().iter().map(floats).collect();
    let top5 =
        json["top5"].as_array().unwrap().iter().map(|p| (p[0].as_u64().unwrap() as usize, floats(&p[1]))).collect();
    let file = |key: &str| fixtures().join(json[key].as_str().unwrap());
    Reference { keys, probabilities, top5, image: file("image"), crop: file("crop") }
}

fn fnv1a64(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// `k` in `[-1000, 1000]` for element `i` of the tensor called `name`.
fn hashed_int(seed: u64, i: u64) -> i64 {
    let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % 2001) as i64 - 1000
}

fn isqrt(n: u64) -> u64 {
    let mut r = (n as f64).sqrt() as u64;
    while r * r > n {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= n {
        r += 1;
    }
    r
}

/// `(offset, den)`: value = `(k + offset) / den`; `q` sets the weights' range.
fn fraction(name: &str, shape: &[usize], q: u64) -> (i64, u64) {
    if name.ends_with("running_var") {
        (3000, 3000)
    } else if name.ends_with("running_mean") || name.ends_with("bias") {
        (0, 10000)
    } else if shape.len() == 1 {
        (4000, 4000)
    } else {
        let fan_in = shape[1..].iter().product::<usize>() as u64;
        (0, isqrt(1_000_000 * fan_in / q))
    }
}

/// The `q` of gen_resnet18_parity.py's ResNet-18: LeCun's range, wider for the classifier.
pub fn resnet18_q(name: &str) -> u64 {
    if name == "fc.weight" {
        54
    } else {
        3
    }
}

/// The tensor the scripts put under `name` for weights of range `q`.
pub fn hashed_tensor(name: &str, shape: &[usize], q: u64) -> Tensor {
    let (offset, den) = fraction(name, shape, q);
    let seed = fnv1a64(name);
    let n = shape.iter().product::<usize>() as u64;
    // Both integers are below 2^24, so exact in f32; the division is the one rounding.
    let values: Vec<f32> = (0..n).map(|i| (hashed_int(seed, i) + offset) as f32 / den as f32).collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

/// The hashed ResNet-18 saved as `resnet18.safetensors` in a fresh directory: the directory
/// (removed on drop) and the file.
pub fn saved_hashed_state(reference: &Reference) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("resnet18.safetensors");
    candle_core::safetensors::save(&hashed_state(reference), &weights).unwrap();
    (dir, weights)
}

/// Every tensor of the reference state dict but `num_batches_tracked`, by torchvision name.
pub fn hashed_state(reference: &Reference) -> HashMap<String, Tensor> {
    reference
        .keys
        .iter()
        .filter(|(name, _)| !name.ends_with("num_batches_tracked"))
        .map(|(name, shape)| (name.clone(), hashed_tensor(name, shape, resnet18_q(name))))
        .collect()
}
