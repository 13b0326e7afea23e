//! A convolution with its batch norm folded in (`Conv2d::forward_with_batch_norm_t`) computes
//! what the two layers compute in turn: in evaluation, for a frozen batch norm in training
//! (outputs and every gradient), and on batch statistics (where nothing is folded).

use candle_core::{DType, Device, Module, ModuleT, Tensor, Var};
use ember_kernels::{Conv2dParams, FusedActivation};
use ember_layers::{BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, ParamStore};

fn layers(bias: bool, stride: usize) -> (ParamStore, Conv2d, BatchNorm) {
    let store = ParamStore::new(9, &Device::Cpu);
    let vb = store.var_builder(DType::F32);
    let params = Conv2dParams { stride, padding: 1, ..Default::default() };
    let conv = Conv2d::new(&Conv2dConfig { params, bias, ..Conv2dConfig::new(3, 6, 3) }, vb.pp("conv")).unwrap();
    let bn = BatchNorm::new(&BatchNormConfig::new(6), vb.pp("bn")).unwrap();
    // Non-trivial statistics and affine parameters.
    let set = |name: &str, t: Tensor| store.assign(name, &t).unwrap();
    set("bn.running_mean", Tensor::new(&[0.3f32, -0.2, 0.1, 0.0, 0.5, -0.4], &Device::Cpu).unwrap());
    set("bn.running_var", Tensor::new(&[0.5f32, 1.5, 0.8, 2.0, 0.3, 1.1], &Device::Cpu).unwrap());
    set("bn.weight", Tensor::new(&[1.2f32, 0.7, -0.5, 1.0, 2.0, 0.9], &Device::Cpu).unwrap());
    set("bn.bias", Tensor::new(&[0.1f32, -0.3, 0.2, 0.0, 0.4, -0.1], &Device::Cpu).unwrap());
    (store, conv, bn)
}

fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let scale = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap().max(1e-6);
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap() / scale
}

fn unfused(conv: &Conv2d, bn: &BatchNorm, xs: &Tensor, act: FusedActivation, train: bool) -> Tensor {
    bn.forward_t_with_activation(&conv.forward(xs).unwrap(), train, act).unwrap()
}

#[test]
fn folded_evaluation_equals_convolution_then_batch_norm() {
    for (bias, stride, act) in
        [(false, 1, FusedActivation::Relu6), (true, 2, FusedActivation::Identity), (true, 1, FusedActivation::Relu)]
    {
        let (_, conv, bn) = layers(bias, stride);
        let xs = Tensor::randn(0f32, 1.0, (2, 3, 9, 7), &Device::Cpu).unwrap();
        let folded = conv.forward_with_batch_norm_t(&xs, &bn, act, false).unwrap();
        let reference = unfused(&conv, &bn, &xs, act, false);
        assert!(max_rel_diff(&folded, &reference) < 1e-5, "bias {bias} stride {stride} {act:?}");
    }
}

#[test]
fn a_frozen_batch_norm_folds_in_training_with_the_same_gradients() {
    let (store, conv, mut bn) = layers(true, 1);
    bn.set_frozen(true);
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 6, 6), &Device::Cpu).unwrap()).unwrap();
    let weights = Tensor::randn(0f32, 1.0, (2, 6, 6, 6), &Device::Cpu).unwrap();
    let act = FusedActivation::Relu6;
    let folded = conv.forward_with_batch_norm_t(&x, &bn, act, true).unwrap();
    let reference = unfused(&conv, &bn, &x, act, true);
    assert!(max_rel_diff(&folded, &reference) < 1e-5);
    let g1 = (folded * &weights).unwrap().sum_all().unwrap().backward().unwrap();
    let g2 = (reference * &weights).unwrap().sum_all().unwrap().backward().unwrap();
    let mut checked = 0;
    for (name, var) in store.vars() {
        let (a, b) = (g1.get(&var).unwrap(), g2.get(&var).unwrap());
        assert!(max_rel_diff(a, b) < 1e-4, "{name}: {}", max_rel_diff(a, b));
        checked += 1;
    }
    assert_eq!(checked, 4, "conv weight and bias, batch norm weight and bias");
    assert!(max_rel_diff(g1.get(&x).unwrap(), g2.get(&x).unwrap()) < 1e-5);
}

#[test]
fn batch_statistics_are_not_folded() {
    let (store, conv, bn) = layers(false, 1);
    assert!(bn.running_affine(true).unwrap().is_none());
    let xs = Tensor::randn(0f32, 1.0, (4, 3, 5, 5), &Device::Cpu).unwrap();
    let before = store.buffer("bn.running_mean").unwrap().as_tensor().to_vec1::<f32>().unwrap();
    let y = conv.forward_with_batch_norm_t(&xs, &bn, FusedActivation::Identity, true).unwrap();
    // Batch statistics normalise each channel to mean 0 (shift bias) and update the running mean.
    let reference = bn.forward_t(&conv.forward(&xs).unwrap(), false).unwrap();
    assert_eq!(y.dims(), reference.dims());
    let after = store.buffer("bn.running_mean").unwrap().as_tensor().to_vec1::<f32>().unwrap();
    assert_ne!(before, after, "training on batch statistics updates the running mean");
}
