//! ResNet-18 and EfficientNet-Lite0 train: the loss falls over a few steps on a small batch,
//! batch norm updates its running statistics in train mode only, and eval mode uses them.

use candle_core::{DType, Device, Tensor};
use candle_nn::ModuleT;
use ember_layers::loss::cross_entropy;
use ember_layers::ParamStore;
use ember_zoo::{ModelOptions, Network};

/// A fixed batch of 4 random 3x64x64 images with labels 0..4.
fn batch() -> (Tensor, Tensor) {
    let store = ParamStore::new(7, &Device::Cpu);
    let x = store
        .var_builder(DType::F32)
        .get_with_hints((4, 3, 64, 64), "x", candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 })
        .unwrap();
    (x, Tensor::new(&[0u32, 1, 2, 3], &Device::Cpu).unwrap())
}

/// Plain SGD on every trainable parameter.
fn sgd_step(store: &ParamStore, model: &Network, x: &Tensor, y: &Tensor, lr: f64) -> f32 {
    let loss = cross_entropy(&model.forward_t(x, true).unwrap(), y).unwrap();
    let grads = loss.backward().unwrap();
    for (_, var) in store.vars() {
        if let Some(g) = grads.get(var.as_tensor()) {
            var.set(&(var.as_tensor() - (g * lr).unwrap()).unwrap()).unwrap();
        }
    }
    loss.to_scalar::<f32>().unwrap()
}

fn buffer(store: &ParamStore, name: &str) -> Vec<f32> {
    store.buffer(name).unwrap().as_tensor().to_vec1::<f32>().unwrap()
}

fn trains(name: &str, bn: &str, steps: usize, lr: f64) {
    let store = ParamStore::new(0, &Device::Cpu);
    let model = ember_zoo::build_with(name, &ModelOptions::new((3, 64, 64), 4), store.var_builder(DType::F32)).unwrap();
    let (x, y) = batch();
    let mean_name = format!("{bn}.running_mean");
    let before = buffer(&store, &mean_name);

    // Eval mode reads but never writes the running statistics.
    let eval_before = model.forward_t(&x, false).unwrap();
    assert_eq!(buffer(&store, &mean_name), before, "{name}: eval mode changed {mean_name}");

    let losses: Vec<f32> = (0..steps).map(|_| sgd_step(&store, &model, &x, &y, lr)).collect();
    assert!(losses.iter().all(|l| l.is_finite()), "{name}: {losses:?}");
    assert!(losses[steps - 1] < losses[0] * 0.7, "{name}: loss did not fall: {losses:?}");

    let after = buffer(&store, &mean_name);
    assert_ne!(after, before, "{name}: train mode left {mean_name} unchanged");

    // Eval mode uses the (updated) running statistics: deterministic, and different from
    // train mode, which normalises with the batch's own statistics.
    let e1 = model.forward_t(&x, false).unwrap();
    let e2 = model.forward_t(&x, false).unwrap();
    assert_eq!(e1.to_vec2::<f32>().unwrap(), e2.to_vec2::<f32>().unwrap());
    assert_eq!(buffer(&store, &mean_name), after);
    let t = model.forward_t(&x, true).unwrap();
    let gap = (t - &e1).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(gap > 1e-4, "{name}: eval output equals train output");
    let moved = (e1 - eval_before).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(moved > 1e-4, "{name}: eval output did not change with training");
}

#[test]
fn resnet18_trains_and_keeps_batch_norm_statistics() {
    trains("resnet18", "layer1.0.bn1", 6, 0.05);
}

#[test]
fn efficientnet_lite0_trains_and_keeps_batch_norm_statistics() {
    trains("efficientnet-lite0", "_blocks.3._bn1", 6, 0.05);
}
