//! `add_activate`: equal to candle's `act(a + b)`, forward and both gradients (f32 to 1e-6
//! relative, f64 exactly), on odd shapes, and to finite differences.

use candle_core::{DType, Device, Tensor, Var};
use ember_kernels::gradcheck::check_gradients;
use ember_kernels::{add_activate, FusedActivation};
use rand::rngs::StdRng;
use rand::SeedableRng;

mod common;

fn random(shape: &[usize], rng: &mut StdRng, dtype: DType) -> Tensor {
    common::uniform(shape, rng, dtype, -3.0, 3.0)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

fn reference(a: &Tensor, b: &Tensor, act: FusedActivation) -> Tensor {
    common::candle_activation(&(a + b).unwrap(), act)
}

#[test]
fn equals_candle_forward_and_both_gradients() {
    let mut rng = StdRng::seed_from_u64(3);
    let shapes: [&[usize]; 4] = [&[1, 3, 7, 5], &[2, 64, 9, 9], &[16, 1], &[100_003]];
    for (case, shape) in shapes.into_iter().enumerate() {
        let act =
            [FusedActivation::Relu, FusedActivation::Relu6, FusedActivation::Identity, FusedActivation::Relu][case];
        for dtype in [DType::F32, DType::F64] {
            let a = Var::from_tensor(&random(shape, &mut rng, dtype)).unwrap();
            let b = Var::from_tensor(&random(shape, &mut rng, dtype)).unwrap();
            let weights = random(shape, &mut rng, dtype);
            let ours = add_activate(&a, &b, act).unwrap();
            let theirs = reference(&a, &b, act);
            assert_eq!(max_abs_diff(&ours, &theirs), 0.0, "{shape:?} {dtype:?} forward");
            let g1 = (ours * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (theirs * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&a, &b] {
                let (x, y) = (g1.get(v).unwrap(), g2.get(v).unwrap());
                assert_eq!(max_abs_diff(x, y), 0.0, "{shape:?} {dtype:?} {act:?} gradient");
            }
        }
    }
}

#[test]
fn only_tracked_operands_get_a_gradient_and_shapes_must_agree() {
    let mut rng = StdRng::seed_from_u64(4);
    let a = Var::from_tensor(&random(&[4, 5], &mut rng, DType::F32)).unwrap();
    let b = random(&[4, 5], &mut rng, DType::F32);
    let grads = add_activate(&a, &b, FusedActivation::Relu).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&a).is_some());
    assert!(grads.get(&b).is_none());
    let err = add_activate(&a, &random(&[5, 4], &mut rng, DType::F32), FusedActivation::Relu).unwrap_err();
    assert!(err.to_string().contains("[4, 5]"), "{err}");
    // Other dtypes take candle's ops, with the same result.
    let (a16, b16) = (a.to_dtype(DType::BF16).unwrap(), b.to_dtype(DType::BF16).unwrap());
    let got = add_activate(&a16, &b16, FusedActivation::Relu).unwrap();
    assert_eq!(max_abs_diff(&got, &(a16 + b16).unwrap().relu().unwrap()), 0.0);
}

#[test]
fn passes_finite_differences() {
    let mut rng = StdRng::seed_from_u64(5);
    // Values away from the kink at 0, where the derivative is not defined.
    let a = (random(&[3, 4, 5], &mut rng, DType::F64) + 0.05).unwrap();
    let b = random(&[3, 4, 5], &mut rng, DType::F64);
    let r = Tensor::arange(0f64, 60.0, &Device::Cpu).unwrap().reshape((3, 4, 5)).unwrap().sin().unwrap();
    let report =
        check_gradients(|t| (add_activate(&t[0], &t[1], FusedActivation::Relu)? * &r)?.sum_all(), &[a, b], 1e-6)
            .unwrap();
    assert!(report.max_rel_error < 1e-6, "{report:?}");
}
