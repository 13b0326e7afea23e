//! ember's fused linear, cross-entropy and activation ops: equal to candle's ops (forward and
//! gradients, random shapes, f32 to 1e-5 relative, f64 tighter) and to finite differences.

use candle_core::{DType, Device, Tensor, Var, D};
use ember_kernels::gradcheck::check_gradients;
use ember_kernels::{activate, cross_entropy, linear, FusedActivation};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod common;
use common::{candle_activation, max_rel_diff};

fn random(shape: &[usize], rng: &mut StdRng, dtype: DType) -> Tensor {
    common::uniform(shape, rng, dtype, -2.0, 2.0)
}

#[test]
fn linear_matches_candle_matmul_bias_and_activation() {
    let mut rng = StdRng::seed_from_u64(5);
    for case in 0..40 {
        let (n, i, o) = (rng.random_range(1..70), rng.random_range(1..90), rng.random_range(1..40));
        let bias = rng.random_bool(0.7);
        let act = [FusedActivation::Identity, FusedActivation::Relu, FusedActivation::Relu6][case % 3];
        for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
            let x = Var::from_tensor(&(random(&[n, i], &mut rng, dtype) * 3.0).unwrap()).unwrap();
            let w = Var::from_tensor(&random(&[o, i], &mut rng, dtype)).unwrap();
            let b = Var::from_tensor(&random(&[o], &mut rng, dtype)).unwrap();
            let r = random(&[n, o], &mut rng, dtype);
            let ours = linear(&x, &w, bias.then_some(b.as_tensor()), act).unwrap();
            let z = x.matmul(&w.t().unwrap()).unwrap();
            let z = if bias { z.broadcast_add(&b).unwrap() } else { z };
            let theirs = candle_activation(&z, act);
            assert!(max_rel_diff(&ours, &theirs) < tol, "case {case} {dtype:?}: forward");
            let g1 = (&ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (&theirs * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let vars: Vec<&Var> = if bias { vec![&x, &w, &b] } else { vec![&x, &w] };
            for v in vars {
                let d = max_rel_diff(g1.get(v).unwrap(), g2.get(v).unwrap());
                assert!(d < tol, "case {case} {dtype:?} {act:?}: gradient differs by {d}");
            }
        }
    }
}

#[test]
fn linear_accepts_leading_batch_dimensions_and_passes_finite_differences() {
    let mut rng = StdRng::seed_from_u64(6);
    let x = random(&[2, 3, 5], &mut rng, DType::F64);
    let w = random(&[4, 5], &mut rng, DType::F64);
    let b = random(&[4], &mut rng, DType::F64);
    assert_eq!(linear(&x, &w, Some(&b), FusedActivation::Identity).unwrap().dims(), [2, 3, 4]);
    for act in [FusedActivation::Identity, FusedActivation::Relu6] {
        let report = check_gradients(
            |t| {
                let y = linear(&t[0], &t[1], Some(&t[2]), act)?;
                let r = Tensor::arange(0f64, y.elem_count() as f64, &Device::Cpu)?.reshape(y.dims())?.sin()?;
                (y * r)?.sum_all()
            },
            &[(x.clone() * 2.0).unwrap(), w.clone(), b.clone()],
            1e-6,
        )
        .unwrap();
        assert!(report.max_rel_error < 1e-6, "{act:?}: {report:?}");
    }
    let err = linear(&x, &random(&[4, 6], &mut rng, DType::F64), None, FusedActivation::Identity).unwrap_err();
    assert!(err.to_string().contains("[2, 3, 5]"), "{err}");
}

#[test]
fn cross_entropy_matches_candle_nn_value_and_gradient() {
    let mut rng = StdRng::seed_from_u64(8);
    for case in 0..30 {
        let (n, k) = (rng.random_range(1..100), rng.random_range(2..20));
        for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
            let logits = Var::from_tensor(&(random(&[n, k], &mut rng, dtype) * 4.0).unwrap()).unwrap();
            let labels: Vec<u32> = (0..n).map(|_| rng.random_range(0..k as u32)).collect();
            let targets = Tensor::new(labels.as_slice(), &Device::Cpu).unwrap();
            let ours = cross_entropy(&logits, &targets, None).unwrap();
            let theirs = candle_nn::loss::cross_entropy(&logits, &targets).unwrap();
            assert!(max_rel_diff(&ours, &theirs) < tol, "case {case} {dtype:?}: value");
            let g1 = (&ours * 1.7).unwrap().backward().unwrap();
            let g2 = (&theirs * 1.7).unwrap().backward().unwrap();
            let d = max_rel_diff(g1.get(&logits).unwrap(), g2.get(&logits).unwrap());
            assert!(d < tol, "case {case} {dtype:?}: gradient differs by {d}");
        }
    }
}

#[test]
fn cross_entropy_ignores_the_ignore_index_and_rejects_bad_targets() {
    let mut rng = StdRng::seed_from_u64(9);
    let logits = random(&[4, 3], &mut rng, DType::F64);
    let targets = Tensor::new(&[2i64, -100, 0, 1], &Device::Cpu).unwrap();
    let kept = Tensor::new(&[0u32, 2, 3], &Device::Cpu).unwrap();
    let expected = candle_nn::loss::cross_entropy(
        &logits.index_select(&kept, 0).unwrap(),
        &Tensor::new(&[2u32, 0, 1], &Device::Cpu).unwrap(),
    )
    .unwrap();
    let ours = cross_entropy(&logits, &targets, Some(-100)).unwrap();
    assert!(max_rel_diff(&ours, &expected) < 1e-12);
    let report =
        check_gradients(|t| cross_entropy(&t[0], &targets, Some(-100)), std::slice::from_ref(&logits), 1e-6).unwrap();
    assert!(report.max_rel_error < 1e-6, "{report:?}");
    let err = cross_entropy(&logits, &Tensor::new(&[0u32, 1, 3, 0], &Device::Cpu).unwrap(), None).unwrap_err();
    assert!(err.to_string().contains("class 3") && err.to_string().contains("row 2"), "{err}");
}

#[test]
fn activation_op_matches_candle_and_routes_gradient_through_its_output() {
    let mut rng = StdRng::seed_from_u64(10);
    let x = Var::from_tensor(&(random(&[3, 5, 7, 11], &mut rng, DType::F32) * 5.0).unwrap()).unwrap();
    let r = random(&[3, 5, 7, 11], &mut rng, DType::F32);
    for act in [FusedActivation::Relu, FusedActivation::Relu6] {
        let ours = activate(&x, act).unwrap();
        let theirs = candle_activation(&x, act);
        assert_eq!(max_rel_diff(&ours, &theirs), 0.0);
        let g1 = (&ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&theirs * &r).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(max_rel_diff(g1.get(&x).unwrap(), g2.get(&x).unwrap()), 0.0, "{act:?}");
    }
    let y = activate(&x, FusedActivation::Relu).unwrap();
    assert!(y.max_keepdim(D::Minus1).unwrap().min_all().unwrap().to_scalar::<f32>().unwrap() >= 0.0);
}
