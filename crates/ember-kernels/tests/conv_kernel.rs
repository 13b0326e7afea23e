//! ember's im2col + GEMM and depthwise convolution kernels against candle's own convolution
//! (forward and all three gradients) over random geometries — strides, paddings, dilations,
//! groups, odd sizes — in f64 and f32, plus finite-difference checks of the fused activations.

use candle_core::{DType, Device, Tensor, Var};
use ember_kernels::gradcheck::check_gradients;
use ember_kernels::{
    candle_conv2d, conv2d_activation_max_pool, conv2d_activation_max_pool_t, conv2d_with_activation, max_pool2d,
    Conv2dParams, FusedActivation, Pool2dParams,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod common;
use common::{candle_activation, max_rel_diff};

fn random(shape: &[usize], rng: &mut StdRng, dtype: DType) -> Tensor {
    common::uniform(shape, rng, dtype, -1.0, 1.0)
}

#[derive(Debug, Clone, Copy)]
struct Case {
    b: usize,
    c: usize,
    o: usize,
    h: usize,
    w: usize,
    k: usize,
    p: Conv2dParams,
    bias: bool,
}

fn random_case(rng: &mut StdRng) -> Case {
    let groups = [1, 1, 1, 2, 3, 0][rng.random_range(0..6)]; // 0 = depthwise
    let k: usize = [1, 2, 3, 3, 5][rng.random_range(0..5)];
    let dilation = if rng.random_bool(0.25) { 2 } else { 1 };
    let stride = rng.random_range(1..=3);
    let padding = rng.random_range(0..=k / 2 + 1);
    let reach = dilation * (k - 1) + 1;
    let h = rng.random_range(reach.saturating_sub(2 * padding).max(1)..reach + 9);
    let w = rng.random_range(reach.saturating_sub(2 * padding).max(1)..reach + 9);
    let (c, o, groups) = if groups == 0 {
        let c = rng.random_range(2..7);
        (c, c, c)
    } else {
        (groups * rng.random_range(1..4), groups * rng.random_range(1..4), groups)
    };
    let b = rng.random_range(1..4);
    Case { b, c, o, h, w, k, p: Conv2dParams { padding, stride, dilation, groups }, bias: rng.random_bool(0.7) }
}

/// (output, [grad x, grad w, grad b]) of `sum(conv(x, w, b) * r)`.
fn run(case: &Case, dtype: DType, ours: bool, act: FusedActivation, seed: u64) -> (Tensor, Vec<Tensor>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let x = Var::from_tensor(&random(&[case.b, case.c, case.h, case.w], &mut rng, dtype)).unwrap();
    let w = Var::from_tensor(&random(&[case.o, case.c / case.p.groups, case.k, case.k], &mut rng, dtype)).unwrap();
    let b = Var::from_tensor(&random(&[case.o], &mut rng, dtype)).unwrap();
    let bias = case.bias.then(|| b.as_tensor());
    let y = if ours {
        conv2d_with_activation(&x, &w, bias, case.p, act).unwrap()
    } else {
        candle_activation(&candle_conv2d(&x, &w, bias, case.p).unwrap(), act)
    };
    let r = random(y.dims(), &mut rng, dtype);
    let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let mut out = vec![grads.get(&x).unwrap().clone(), grads.get(&w).unwrap().clone()];
    if case.bias {
        out.push(grads.get(&b).unwrap().clone());
    }
    (y, out)
}

#[test]
fn conv2d_kernel_matches_candle_forward_and_backward_on_random_geometries() {
    let mut rng = StdRng::seed_from_u64(7);
    for i in 0..120 {
        let case = random_case(&mut rng);
        for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 1e-5)] {
            let (y1, g1) = run(&case, dtype, true, FusedActivation::Identity, i);
            let (y2, g2) = run(&case, dtype, false, FusedActivation::Identity, i);
            let d = max_rel_diff(&y1, &y2);
            assert!(d < tol, "case {i} {case:?} {dtype:?}: forward differs by {d}");
            for (n, (a, b)) in g1.iter().zip(&g2).enumerate() {
                let d = max_rel_diff(a, b);
                assert!(d < tol, "case {i} {case:?} {dtype:?}: gradient {} differs by {d}", ["x", "w", "b"][n]);
            }
        }
    }
}

#[test]
fn fused_activations_match_candle_activation_after_convolution() {
    let mut rng = StdRng::seed_from_u64(11);
    for i in 0..40 {
        let case = random_case(&mut rng);
        for act in [FusedActivation::Relu, FusedActivation::Relu6] {
            let (y1, g1) = run(&case, DType::F64, true, act, 100 + i);
            let (y2, g2) = run(&case, DType::F64, false, act, 100 + i);
            assert!(max_rel_diff(&y1, &y2) < 1e-10, "case {i} {case:?} {act:?}: forward");
            for (a, b) in g1.iter().zip(&g2) {
                assert!(max_rel_diff(a, b) < 1e-10, "case {i} {case:?} {act:?}: gradient");
            }
        }
    }
}

#[test]
fn conv2d_kernel_gradients_pass_finite_differences() {
    let mut rng = StdRng::seed_from_u64(3);
    for i in 0..12 {
        let mut case = random_case(&mut rng);
        case.b = 1;
        for act in [FusedActivation::Identity, FusedActivation::Relu6] {
            let mut r = StdRng::seed_from_u64(i);
            // Scale so some outputs exceed 6 and some are negative; fine enough steps avoid kinks.
            let x = (random(&[case.b, case.c, case.h, case.w], &mut r, DType::F64) * 4.0).unwrap();
            let w = random(&[case.o, case.c / case.p.groups, case.k, case.k], &mut r, DType::F64);
            let b = random(&[case.o], &mut r, DType::F64);
            let p = case.p;
            let report = check_gradients(
                |t| {
                    let y = conv2d_with_activation(&t[0], &t[1], Some(&t[2]), p, act)?;
                    let r = Tensor::arange(0f64, y.elem_count() as f64, &Device::Cpu)?.reshape(y.dims())?.cos()?;
                    (y * r)?.sum_all()
                },
                &[x, w, b],
                1e-6,
            )
            .unwrap();
            assert!(report.max_rel_error < 1e-5, "case {i} {case:?} {act:?}: {report:?}");
        }
    }
}

#[test]
fn input_gradient_is_skipped_for_plain_data_but_weight_gradient_is_not() {
    let x = Tensor::ones((2, 3, 6, 6), DType::F32, &Device::Cpu).unwrap();
    let w = Var::ones((4, 3, 3, 3), DType::F32, &Device::Cpu).unwrap();
    let y = conv2d_with_activation(&x, &w, None, Conv2dParams::default(), FusedActivation::Identity).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&x).is_none());
    // Every output sums 27 ones over its window; each weight sees 2 images x 16 positions.
    let gw = grads.get(&w).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(gw.iter().all(|v| *v == 32.0), "{gw:?}");
}

#[test]
fn conv_activation_max_pool_fusion_equals_the_three_separate_ops() {
    let mut rng = StdRng::seed_from_u64(21);
    let mut checked = 0;
    for i in 0..80 {
        let case = random_case(&mut rng);
        let k = rng.random_range(1..=3usize);
        let s = rng.random_range(1..=k.max(2));
        let pad = rng.random_range(0..=k / 2);
        let pool = Pool2dParams { kernel: (k, k), stride: (s, s), padding: (pad, pad) };
        let act = [FusedActivation::Identity, FusedActivation::Relu, FusedActivation::Relu6][i as usize % 3];
        let mut r = StdRng::seed_from_u64(i);
        // Integers in the input make ties inside pooling windows likely (first-max routing).
        let x = (random(&[case.b, case.c, case.h, case.w], &mut r, DType::F64) * 3.0).unwrap().round().unwrap();
        let w = random(&[case.o, case.c / case.p.groups, case.k, case.k], &mut r, DType::F64).round().unwrap();
        let b = random(&[case.o], &mut r, DType::F64);
        // The reference is ember's unfused convolution (itself checked against candle above):
        // candle sums in another order, and with ties in a window a 1-ulp difference would
        // legitimately route a gradient elsewhere.
        let separate = |x: &Tensor, w: &Tensor, b: &Tensor| -> candle_core::Result<Tensor> {
            max_pool2d(&conv2d_with_activation(x, w, Some(b), case.p, act)?, pool)
        };
        let (xv, wv, bv) =
            (Var::from_tensor(&x).unwrap(), Var::from_tensor(&w).unwrap(), Var::from_tensor(&b).unwrap());
        let Ok(reference) = separate(&xv, &wv, &bv) else { continue }; // pool larger than the map
        let fused = conv2d_activation_max_pool(&xv, &wv, Some(&bv), case.p, act, Some(pool)).unwrap();
        assert!(max_rel_diff(&fused, &reference) < 1e-12, "case {i} {case:?} {pool:?} {act:?}: forward");
        let r = random(fused.dims(), &mut StdRng::seed_from_u64(99), DType::F64);
        let g1 = (&fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&reference * &r).unwrap().sum_all().unwrap().backward().unwrap();
        // The inference variant records no argmax; its backward recomputes it.
        let inference = conv2d_activation_max_pool_t(&xv, &wv, Some(&bv), case.p, act, Some(pool), false).unwrap();
        assert!(max_rel_diff(&inference, &reference) < 1e-12, "case {i}: inference forward");
        let g3 = (&inference * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (n, v) in [&xv, &wv, &bv].into_iter().enumerate() {
            let d = max_rel_diff(g1.get(v).unwrap(), g2.get(v).unwrap());
            assert!(d < 1e-10, "case {i} {case:?} {pool:?} {act:?}: gradient {n} differs by {d}");
            let d = max_rel_diff(g3.get(v).unwrap(), g2.get(v).unwrap());
            assert!(d < 1e-10, "case {i} {case:?} {pool:?} {act:?}: inference-mode gradient {n} differs by {d}");
        }
        checked += 1;
    }
    assert!(checked > 40, "only {checked} geometries fitted a pool");
}

#[test]
fn classic_cnn_layers_in_f32_fused_equal_separate_ops_in_training_and_inference() {
    // The classic CNN's two layers in f32 (on AVX-512 CPUs: the direct kernels, the vectorised
    // pool and unpooling), small integers so every sum is exact and ties are common.
    let pool = Pool2dParams::square(2);
    for (seed, (c, o, hw)) in [(1, 32, 28), (32, 64, 13), (3, 20, 11)].into_iter().enumerate() {
        let mut r = StdRng::seed_from_u64(seed as u64);
        let int = |shape: &[usize], r: &mut StdRng, scale: f64| {
            (random(shape, r, DType::F32) * scale).unwrap().round().unwrap()
        };
        let x = Var::from_tensor(&int(&[3, c, hw, hw], &mut r, 2.0)).unwrap();
        let w = Var::from_tensor(&int(&[o, c, 3, 3], &mut r, 1.0)).unwrap();
        let b = Var::from_tensor(&int(&[o], &mut r, 2.0)).unwrap();
        let p = Conv2dParams::default();
        for act in [FusedActivation::Relu, FusedActivation::Identity] {
            let reference = max_pool2d(&conv2d_with_activation(&x, &w, Some(&b), p, act).unwrap(), pool).unwrap();
            let dy = int(reference.dims(), &mut r, 3.0);
            let want = (&reference * &dy).unwrap().sum_all().unwrap().backward().unwrap();
            for train in [true, false] {
                let fused = conv2d_activation_max_pool_t(&x, &w, Some(&b), p, act, Some(pool), train).unwrap();
                assert_eq!(max_rel_diff(&fused, &reference), 0.0, "{c}->{o} {act:?} train={train}: forward");
                let got = (&fused * &dy).unwrap().sum_all().unwrap().backward().unwrap();
                for (n, v) in [&x, &w, &b].into_iter().enumerate() {
                    let d = max_rel_diff(got.get(v).unwrap(), want.get(v).unwrap());
                    assert!(d < 1e-6, "{c}->{o} {act:?} train={train}: gradient {n} differs by {d}");
                }
            }
        }
    }
}
