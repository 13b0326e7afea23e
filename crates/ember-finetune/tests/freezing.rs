//! Freezing by pattern: frozen parameters and the running statistics of frozen batch norms are
//! bit-identical after training; the rest moves.

use std::sync::Arc;

use ember_data::{DataLoader, LabelledImages};
use ember_finetune::{fine_tune, train_with_frozen, FineTuneConfig, FineTuneModel};
use ember_zoo::ModelOptions;

/// 48 tiny images of 3 classes told apart by brightness.
fn data() -> Arc<LabelledImages> {
    let pixels: Vec<u8> = (0..48).flat_map(|i| vec![(20 + 90 * (i % 3) + i / 3) as u8; 16 * 16]).collect();
    let labels: Vec<u8> = (0..48).map(|i| (i % 3) as u8).collect();
    Arc::new(LabelledImages::new(pixels, labels, 16, 16, 3).unwrap())
}

/// A copy of every parameter and buffer (the store's tensors share storage with its `Var`s,
/// which the optimizer updates in place).
fn snapshot(model: &FineTuneModel) -> Vec<(String, Vec<f32>)> {
    model.store.state().into_iter().map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1::<f32>().unwrap())).collect()
}

/// A VGG-small for the data's 16x16 grey images and 3 classes (initialised from `seed`), and a
/// loader of 16-image batches shuffled by `shuffle`.
fn vgg_and_data(seed: u64, shuffle: u64) -> (FineTuneModel, DataLoader) {
    let options = ModelOptions::new((1, 16, 16), 3);
    let model = FineTuneModel::scratch("vgg-small", &options, seed).unwrap();
    (model, DataLoader::new(data(), 16).with_shuffle(shuffle))
}

fn changed(before: &[(String, Vec<f32>)], after: &[(String, Vec<f32>)], name: &str) -> bool {
    let find =
        |s: &[(String, Vec<f32>)]| s.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name}")).1.clone();
    let (a, b) = (find(before), find(after));
    a.iter().zip(&b).any(|(x, y)| x.to_bits() != y.to_bits())
}

#[test]
fn frozen_parameters_and_their_batch_norm_statistics_stay_bit_identical() {
    let (mut model, train) = vgg_and_data(3, 0);
    let before = snapshot(&model);
    // The first block (features.0 .. features.7) frozen, the rest trains.
    let frozen: Vec<String> = ["features.0.*", "features.1.*", "features.3.*", "features.4.*"].map(String::from).into();
    train_with_frozen(&mut model, &frozen, &train, None, 2, 1e-2, 0.01, &mut |_| {}).unwrap();
    // Frozen only while it trained: every parameter is trainable again afterwards.
    assert_eq!(ember_layers::tree_summary(&model.network).trainable_params, model.store.num_parameters());
    let after = snapshot(&model);
    for name in [
        "features.0.weight",
        "features.1.weight",
        "features.1.bias",
        "features.1.running_mean",
        "features.1.running_var",
        "features.4.weight",
        "features.4.running_var",
    ] {
        assert!(!changed(&before, &after, name), "{name} changed although frozen");
    }
    for name in ["features.8.weight", "features.9.running_mean", "classifier.3.weight"] {
        assert!(changed(&before, &after, name), "{name} did not train");
    }
}

#[test]
fn fine_tune_trains_the_head_first_then_everything() {
    let (mut model, train) = vgg_and_data(5, 1);
    let before = snapshot(&model);
    let head_only = FineTuneConfig { head_epochs: 3, epochs: 0, head_lr: 0.05, ..FineTuneConfig::default() };
    let report = fine_tune(&mut model, &train, None, &head_only, &mut |_| {}).unwrap();
    assert_eq!(report.head.len(), 3);
    assert!(report.head[2].loss < report.head[0].loss, "{:?}", report.head);
    let after_head = snapshot(&model);
    assert!(changed(&before, &after_head, "classifier.3.weight"));
    for (name, _) in &before {
        if !name.starts_with("classifier.3.") {
            assert!(!changed(&before, &after_head, name), "{name} changed in the head phase");
        }
    }
    let full = FineTuneConfig { head_epochs: 0, epochs: 2, lr: 1e-2, ..FineTuneConfig::default() };
    let report = fine_tune(&mut model, &train, None, &full, &mut |_| {}).unwrap();
    assert_eq!(report.epochs.len(), 2);
    assert!(changed(&after_head, &snapshot(&model), "features.0.weight"));
}

#[test]
fn recalibration_replaces_stale_running_statistics_with_the_data_s() {
    let options = ModelOptions::new((1, 16, 16), 3);
    let mut model = ember_finetune::FineTuneModel::scratch("vgg-small", &options, 4).unwrap();
    // Stale statistics, as left by a short run with a small momentum.
    model
        .store
        .assign("features.1.running_mean", &candle_core::Tensor::full(5f32, 32, &candle_core::Device::Cpu).unwrap())
        .unwrap();
    let loader = DataLoader::new(data(), 16);
    // The per-channel mean of the first convolution's output over the whole dataset.
    let mut sum: Option<candle_core::Tensor> = None;
    for batch in loader.epoch(0, &candle_core::Device::Cpu) {
        let images = batch.unwrap().images;
        let mut conv = None;
        model
            .network
            .forward_tapped(&images, false, &mut |name, t| {
                if name == "features.0" {
                    conv = Some(t.clone())
                }
            })
            .unwrap();
        let m = conv.unwrap().mean_keepdim(3).unwrap().mean_keepdim(2).unwrap().sum(0).unwrap().flatten_all().unwrap();
        sum = Some(match sum {
            Some(s) => (s + m).unwrap(),
            None => m,
        });
    }
    let expected = (sum.unwrap() / 48.0).unwrap().to_vec1::<f32>().unwrap();
    ember_finetune::recalibrate_batch_norms(&mut model, &loader, 30).unwrap();
    let got = model.store.buffer("features.1.running_mean").unwrap().as_tensor().to_vec1::<f32>().unwrap();
    for (c, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert!((g - e).abs() < 0.05 * e.abs().max(0.1), "channel {c}: {g} vs {e}");
    }
}
