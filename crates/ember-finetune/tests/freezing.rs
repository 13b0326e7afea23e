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

fn changed(before: &[(String, Vec<f32>)], after: &[(String, Vec<f32>)], name: &str) -> bool {
    let find =
        |s: &[(String, Vec<f32>)]| s.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name}")).1.clone();
    let (a, b) = (find(before), find(after));
    a.iter().zip(&b).any(|(x, y)| x.to_bits() != y.to_bits())
}

#[test]
fn frozen_parameters_and_their_batch_norm_statistics_stay_bit_identical() {
    let options = ModelOptions::new((1, 16, 16), 3);
    let mut model = FineTuneModel::scratch("vgg-small", &options, 3).unwrap();
    let before = snapshot(&model);
    let train = DataLoader::new(data(), 16).with_shuffle(0);
    // The first block (features.0 .. features.7) frozen, the rest trains.
    let frozen: Vec<String> = ["features.0.*", "features.1.*", "features.3.*", "features.4.*"].map(String::from).into();
    train_with_frozen(&mut model, &frozen, &train, None, 2, 1e-2, 0.01, &mut |_| {}).unwrap();
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
    let options = ModelOptions::new((1, 16, 16), 3);
    let mut model = FineTuneModel::scratch("vgg-small", &options, 5).unwrap();
    let before = snapshot(&model);
    let train = DataLoader::new(data(), 16).with_shuffle(1);
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
