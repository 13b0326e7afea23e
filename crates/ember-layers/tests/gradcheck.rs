//! Finite-difference gradient checks (f64) for every layer and loss.

use candle_core::{DType, Device, Tensor};
use candle_nn::Module;
use ember_kernels::gradcheck::check_gradients;
use ember_kernels::init::Init;
use ember_kernels::Conv2dParams;
use ember_layers::{loss, Activation, Conv2d, Conv2dConfig, Flatten, Linear, MaxPool2d, ParamStore};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn random(shape: &[usize], seed: u64) -> Tensor {
    Init::Normal { mean: 0.0, std: 1.0 }
        .sample(shape, DType::F64, &Device::Cpu, &mut StdRng::seed_from_u64(seed))
        .unwrap()
}

const STEP: f64 = 1e-6;
const TOL: f64 = 1e-6;

#[test]
fn conv2d_gradients_pass_finite_difference_check() {
    for (i, params) in [
        Conv2dParams::default(),
        Conv2dParams { stride: 2, padding: 1, ..Default::default() },
        Conv2dParams { dilation: 2, padding: 2, ..Default::default() },
    ]
    .into_iter()
    .enumerate()
    {
        let x = random(&[2, 2, 7, 6], 1 + i as u64);
        let w = random(&[3, 2, 3, 3], 10 + i as u64);
        let b = random(&[3], 20 + i as u64);
        let up = {
            let y = ember_kernels::conv2d(&x, &w, Some(&b), params).unwrap();
            random(y.dims(), 30 + i as u64)
        };
        let report = check_gradients(
            |t| (ember_kernels::conv2d(&t[0], &t[1], Some(&t[2]), params)? * &up)?.sum_all(),
            &[x, w, b],
            STEP,
        )
        .unwrap();
        assert!(report.max_rel_error < TOL, "{params:?}: {report:?}");
    }
}

#[test]
fn conv2d_layer_gradients_pass_finite_difference_check() {
    // Through the layer: parameters come from the store, input gradient checked.
    let store = ParamStore::new(3, &Device::Cpu);
    let conv = Conv2d::new(&Conv2dConfig::new(2, 3, 3), store.var_builder(DType::F64).pp("c")).unwrap();
    let up = random(&[1, 3, 3, 4], 5);
    let report =
        check_gradients(|t| (conv.forward(&t[0])? * &up)?.sum_all(), &[random(&[1, 2, 5, 6], 4)], STEP).unwrap();
    assert!(report.max_rel_error < TOL, "{report:?}");
}

#[test]
fn linear_gradients_pass_finite_difference_check() {
    let up = random(&[4, 3], 7);
    let report = check_gradients(
        |t| {
            let y = t[0].matmul(&t[1].t()?)?.broadcast_add(&t[2])?;
            (y * &up)?.sum_all()
        },
        &[random(&[4, 5], 1), random(&[3, 5], 2), random(&[3], 3)],
        STEP,
    )
    .unwrap();
    assert!(report.max_rel_error < TOL, "{report:?}");

    let store = ParamStore::new(3, &Device::Cpu);
    let fc = Linear::new(5, 3, true, store.var_builder(DType::F64).pp("fc")).unwrap();
    let report = check_gradients(|t| (fc.forward(&t[0])? * &up)?.sum_all(), &[random(&[4, 5], 9)], STEP).unwrap();
    assert!(report.max_rel_error < TOL, "{report:?}");
}

#[test]
fn max_pool_layer_gradients_pass_finite_difference_check() {
    // Distinct values keep every window's maximum unique, so the function is differentiable.
    let x: Vec<f64> = (0..2 * 9 * 8).map(|i| ((i * 37) % 144) as f64 / 144.0).collect();
    let x = Tensor::from_vec(x, (1, 2, 9, 8), &Device::Cpu).unwrap();
    let up = random(&[1, 2, 5, 4], 3);
    let pool = MaxPool2d::new(3, 2, 1);
    let report = check_gradients(|t| (pool.forward(&t[0])? * &up)?.sum_all(), &[x], STEP).unwrap();
    assert!(report.max_rel_error < TOL, "{report:?}");
}

#[test]
fn activations_and_flatten_pass_finite_difference_check() {
    // Keep inputs away from ReLU's kink at 0.
    let x = random(&[3, 2, 2], 11).affine(1.0, 0.0).unwrap();
    let x = (x.sign().unwrap() * 0.1 + &x).unwrap();
    for act in [Activation::Relu, Activation::Sigmoid, Activation::Tanh, Activation::Identity] {
        let up = random(&[3, 4], 12);
        let report = check_gradients(
            |t| (act.forward(&t[0])?.apply(&Flatten)? * &up)?.sum_all(),
            std::slice::from_ref(&x),
            STEP,
        )
        .unwrap();
        assert!(report.max_rel_error < TOL, "{act:?}: {report:?}");
    }
}

#[test]
fn cross_entropy_gradients_pass_finite_difference_check() {
    let targets = Tensor::new(&[2u32, 0, 1, 2], &Device::Cpu).unwrap();
    let report = check_gradients(|t| loss::cross_entropy(&t[0], &targets), &[random(&[4, 3], 13)], STEP).unwrap();
    assert!(report.max_rel_error < TOL, "{report:?}");
}
