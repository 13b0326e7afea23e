//! The `timm` rename preset against timm's real key lists (tests/fixtures/gen_timm_lite_names.py):
//! for every EfficientNet-Lite variant, timm's keys map one-to-one onto ember's state names with
//! equal shapes, and a strict load of a timm-named checkpoint succeeds; and tf_efficientnet_lite0
//! with hashed weights under timm's names gives timm's probabilities
//! (tests/fixtures/gen_timm_lite0_parity.py).

#[path = "support/hashed_weights.rs"]
mod hashed_weights;

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::ModuleT;
use ember_finetune::{load_state, parse_rules, rename_all, FineTuneModel, ImagePreprocess, LoadOptions, RenameRule};
use ember_layers::ParamStore;
use ember_zoo::ModelOptions;

/// `(key, shape)` in timm's order; scalars (`num_batches_tracked`) have an empty shape.
fn timm_keys(variant: usize) -> Vec<(String, Vec<usize>)> {
    let path = format!("{}/tests/fixtures/timm_efficientnet_lite{variant}_names.txt", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .map(|line| {
            let (key, shape) = line.split_once(' ').unwrap();
            let dims = if shape == "-" { Vec::new() } else { shape.split(',').map(|d| d.parse().unwrap()).collect() };
            (key.to_string(), dims)
        })
        .collect()
}

fn ember_state(variant: usize) -> (ParamStore, BTreeMap<String, Vec<usize>>) {
    let store = ParamStore::new(0, &Device::Cpu);
    let options = ModelOptions::new((3, 224, 224), 1000);
    ember_zoo::build_with(&format!("efficientnet-lite{variant}"), &options, store.var_builder(DType::F32)).unwrap();
    let state = store.state().into_iter().map(|(n, t)| (n, t.dims().to_vec())).collect();
    (store, state)
}

#[test]
fn timm_preset_maps_every_lite_variant_one_to_one() {
    let rules = parse_rules(&["timm".to_string()]).unwrap();
    for variant in 0..5 {
        let keys = timm_keys(variant);
        let (store, ember) = ember_state(variant);
        let names: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
        let renamed = rename_all(&rules, &names);
        let mut mapped = BTreeMap::new();
        for ((original, shape), new) in keys.iter().zip(&renamed) {
            if original.ends_with("num_batches_tracked") {
                continue; // Not kept by ember; loading skips it.
            }
            let model_shape =
                ember.get(new).unwrap_or_else(|| panic!("lite{variant}: {original} -> {new}: no such tensor"));
            assert_eq!(model_shape, shape, "lite{variant}: {original} -> {new}");
            assert!(mapped.insert(new.clone(), original.clone()).is_none(), "lite{variant}: two keys map to {new}");
        }
        assert_eq!(mapped.len(), ember.len(), "lite{variant}: every ember tensor has a timm key");

        // The same through the loader: strict, complete, every value where the rules say.
        let tensors: Vec<(String, Tensor)> = keys
            .iter()
            .enumerate()
            .map(|(i, (k, shape))| {
                let t = if shape.is_empty() {
                    Tensor::new(0i64, &Device::Cpu).unwrap()
                } else {
                    Tensor::full(i as f32, shape.as_slice(), &Device::Cpu).unwrap()
                };
                (k.clone(), t)
            })
            .collect();
        let options = LoadOptions { rename: rules.clone(), ..LoadOptions::strict() };
        let report = load_state(&store, tensors, &options, "timm").unwrap();
        assert_eq!(report.loaded.len(), ember.len());
        let position = |key: &str| keys.iter().position(|(k, _)| k == key).unwrap() as f32;
        let loaded: BTreeMap<String, Tensor> = store.state().into_iter().collect();
        for (timm_key, ember_name) in [
            ("blocks.0.0.conv_pw.weight", "_blocks.0._project_conv.weight"),
            ("blocks.1.0.conv_pw.weight", "_blocks.1._expand_conv.weight"),
            ("blocks.6.0.bn3.running_var", &format!("_blocks.{}._bn2.running_var", block_count(&ember) - 1)),
            ("bn2.bias", "_bn1.bias"),
            ("classifier.weight", "_fc.weight"),
        ] {
            let value = loaded[ember_name].flatten_all().unwrap().get(0).unwrap();
            assert_eq!(value.to_scalar::<f32>().unwrap(), position(timm_key), "lite{variant}: {timm_key}");
        }
    }
}

/// How many `_blocks.{n}` the model has.
fn block_count(ember: &BTreeMap<String, Vec<usize>>) -> usize {
    let index = |n: &str| n.strip_prefix("_blocks.")?.split('.').next()?.parse::<usize>().ok();
    ember.keys().filter_map(|n| index(n)).max().unwrap() + 1
}

#[test]
fn timm_named_lite0_reproduces_timm_probabilities() {
    let fixtures = hashed_weights::fixtures();
    let text = std::fs::read_to_string(fixtures.join("timm_lite0_parity.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let q = json["q"].as_u64().unwrap();
    let expected: Vec<f32> =
        json["probabilities"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap() as f32).collect();

    let state: std::collections::HashMap<String, Tensor> = timm_keys(0)
        .into_iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .map(|(k, shape)| {
            let t = hashed_weights::hashed_tensor(&k, &shape, q);
            (k, t)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("timm_lite0.safetensors");
    candle_core::safetensors::save(&state, &weights).unwrap();
    let rules = RenameRule::preset("timm").unwrap();
    let options = ModelOptions::new((3, 224, 224), 1000);
    let model = FineTuneModel::pretrained("efficientnet-lite0", &options, &weights, &rules, 0).unwrap();
    assert!(model.report.is_complete() && model.report.skipped.is_empty(), "{}", model.report.summary());

    // The 224x224 crop as it is, normalised as EfficientNet-Lite expects ((x - 0.5) / 0.5).
    let preprocess = ImagePreprocess { resize: 224, crop: 224, ..ImagePreprocess::efficientnet_lite() };
    let x = preprocess.load(&fixtures.join(json["image"].as_str().unwrap())).unwrap().unsqueeze(0).unwrap();
    let logits = model.network.forward_t(&x, false).unwrap();
    let probs = candle_nn::ops::softmax(&logits, 1).unwrap().squeeze(0).unwrap().to_vec1::<f32>().unwrap();
    let (class, diff) = probs
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold((0, 0f32), |worst, (i, d)| if d > worst.1 { (i, d) } else { worst });
    eprintln!("timm tf_efficientnet_lite0 parity: max |p - p_timm| = {diff:e} (class {class})");
    assert!(diff < 1e-5, "class {class}: ember {} vs timm {}", probs[class], expected[class]);
}
