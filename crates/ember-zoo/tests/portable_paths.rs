//! Every classifier in the zoo computes the same logits and the same gradients on the portable
//! path (candle's ops, what CUDA runs) as on ember's CPU kernels, in training and evaluation
//! mode. This is the device-generic code of every model checked on a machine without a GPU.

use candle_core::{DType, Device, Tensor};
use candle_nn::ModuleT;
use ember_kernels::with_portable_ops;
use ember_layers::loss::cross_entropy;
use ember_layers::ParamStore;
use ember_zoo::{build_with, Architecture, ModelOptions, Task, MODELS};

/// Largest magnitude in `t`.
fn max_abs(t: &Tensor) -> f64 {
    t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap()
}

/// Largest element-wise difference of `a` from `b`, relative to `scale`.
fn diff(a: &Tensor, b: &Tensor, scale: f64) -> f64 {
    max_abs(&(a - b).unwrap()) / scale.max(f64::MIN_POSITIVE)
}

/// Logits and every parameter's gradient (in the store's order) for one batch.
fn logits_and_gradients(net: &dyn ModuleT, store: &ParamStore, xs: &Tensor, ys: &Tensor, train: bool) -> Vec<Tensor> {
    let logits = net.forward_t(xs, train).unwrap();
    let grads = cross_entropy(&logits, ys).unwrap().backward().unwrap();
    let mut out = vec![logits];
    for (name, var) in store.vars() {
        let grad = grads.get(var.as_tensor()).cloned();
        out.push(grad.unwrap_or_else(|| panic!("no gradient for {name}")));
    }
    out
}

#[test]
fn every_classifier_agrees_on_both_paths() {
    let mut checked = 0;
    // Deeper and wider variants of a family (ResNet-34, Lite1 to Lite4) are built from the
    // blocks checked here; leaving them out keeps the test short.
    let variants = |m: &&ember_zoo::ModelInfo| {
        !matches!(m.architecture, Architecture::ResNet(34) | Architecture::EfficientNetLite(1..))
    };
    for info in MODELS.iter().filter(|m| m.task == Task::Classification).filter(variants) {
        // Small inputs keep the test fast; every model's geometry still runs (ResNet's ImageNet
        // stem, whose max pool pads, and its downsampling; Lite's strided depthwise blocks).
        let input = if info.input.0 == 3 { (3, 36, 33) } else { info.input };
        // Dropout off: its masks are random, and the two passes must see the same network.
        let dropout = info.architecture.has_dropout().then_some(0.0);
        let options = ModelOptions { dropout, ..ModelOptions::new(input, 5) };
        let store = ParamStore::new(3, &Device::Cpu);
        let net = build_with(info.name, &options, store.var_builder(DType::F64)).unwrap();
        let (c, h, w) = input;
        let xs = Tensor::rand(-1f64, 1.0, (3, c, h, w), &Device::Cpu).unwrap();
        let ys = Tensor::new(&[0u32, 4, 2], &Device::Cpu).unwrap();
        let names: Vec<String> = store.vars().into_iter().map(|(name, _)| name).collect();
        for train in [false, true] {
            let native = logits_and_gradients(&net, &store, &xs, &ys, train);
            let portable = with_portable_ops(|| logits_and_gradients(&net, &store, &xs, &ys, train));
            let d = diff(&portable[0], &native[0], max_abs(&native[0]));
            assert!(d < 1e-10, "{} (train={train}): the logits differ by {d:e}", info.name);
            // Gradients relative to the largest in the model: some (EfficientNet-Lite's early
            // biases at initialisation) are sums cancelling to ~1e-9 of it.
            let largest = native[1..].iter().map(max_abs).fold(0.0, f64::max);
            for ((p, n), name) in portable[1..].iter().zip(&native[1..]).zip(&names) {
                let d = diff(p, n, largest);
                assert!(d < 1e-10, "{} (train={train}): the gradient of {name} differs by {d:e}", info.name);
            }
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} classifiers checked");
}
