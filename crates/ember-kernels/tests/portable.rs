//! The portable path of every op (candle's ops, what CUDA and Metal run) against ember's CPU
//! kernels: the same values and the same gradients for every input, in odd sizes, batch 1,
//! with padding, overlapping windows and ties. `with_portable_ops` forces that path on the CPU,
//! so what a GPU computes is checked on a machine without one.

mod common;

use candle_core::{DType, Result, Tensor, Var};
use common::{max_rel_diff, uniform};
use ember_kernels::{
    activate, adaptive_avg_pool2d, add_activate, avg_pool2d, batch_norm_eval, batch_norm_train, conv1d, conv2d,
    conv2d_activation_max_pool_t, conv2d_padded_t, cross_entropy, linear, max_pool2d, with_portable_ops, Conv2dParams,
    FusedActivation, Padding2d, Pool2dParams,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// The output of `op` on `inputs` and the gradients of a weighted sum of it (random weights, so
/// every output element's gradient matters) with respect to every input.
fn forward_backward(op: &dyn Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) -> Result<(Tensor, Vec<Tensor>)> {
    let vars: Vec<Var> = inputs.iter().map(Var::from_tensor).collect::<Result<_>>()?;
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = op(&tensors)?;
    let weights = uniform(out.dims(), &mut StdRng::seed_from_u64(99), out.dtype(), -1.0, 1.0);
    let grads = (&out * weights)?.sum_all()?.backward()?;
    let grads = tensors.iter().map(|t| grads.get(t).cloned().unwrap_or_else(|| t.zeros_like().unwrap())).collect();
    Ok((out, grads))
}

/// Asserts that the portable path of `op` equals the CPU kernel's, values and gradients, in f64
/// (to 1e-10) and in f32 (to 1e-5).
fn assert_paths_agree(what: &str, op: &dyn Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    for (dtype, tolerance) in [(DType::F64, 1e-10), (DType::F32, 1e-5)] {
        let inputs: Vec<Tensor> = inputs.iter().map(|t| t.to_dtype(dtype).unwrap()).collect();
        let (out, grads) = forward_backward(op, &inputs).unwrap();
        let (p_out, p_grads) = with_portable_ops(|| forward_backward(op, &inputs)).unwrap();
        let d = max_rel_diff(&p_out, &out);
        assert!(d <= tolerance, "{what} {dtype:?}: forward differs by {d:e}");
        for (i, (p, g)) in p_grads.iter().zip(&grads).enumerate() {
            let d = max_rel_diff(p, g);
            assert!(d <= tolerance, "{what} {dtype:?}: gradient of input {i} differs by {d:e}");
        }
    }
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

/// Values drawn from a handful of integers, so pooling windows hold ties.
fn with_ties(shape: &[usize], rng: &mut StdRng) -> Tensor {
    uniform(shape, rng, DType::F64, -3.0, 3.0).round().unwrap()
}

#[test]
fn max_pool_routes_to_the_first_maximum_on_both_paths() {
    let mut rng = rng();
    let geometries = [
        Pool2dParams::square(2),
        Pool2dParams { kernel: (3, 3), stride: (2, 2), padding: (1, 1) },
        Pool2dParams { kernel: (3, 2), stride: (1, 2), padding: (1, 0) },
    ];
    for (i, params) in geometries.into_iter().enumerate() {
        for shape in [[1, 1, 7, 5], [2, 3, 9, 8]] {
            let ties = with_ties(&shape, &mut rng);
            let smooth = uniform(&shape, &mut rng, DType::F64, -1.0, 1.0);
            for x in [ties, smooth] {
                assert_paths_agree(&format!("max_pool2d #{i} {shape:?}"), &|t| max_pool2d(&t[0], params), &[x]);
            }
        }
    }
}

#[test]
fn avg_pool_pads_and_overlaps_alike_on_both_paths() {
    let mut rng = rng();
    let geometries = [
        Pool2dParams::square(2),
        Pool2dParams { kernel: (3, 3), stride: (1, 1), padding: (1, 1) },
        Pool2dParams { kernel: (3, 2), stride: (2, 1), padding: (1, 1) },
    ];
    for (i, params) in geometries.into_iter().enumerate() {
        let x = uniform(&[2, 3, 7, 6], &mut rng, DType::F64, -1.0, 1.0);
        assert_paths_agree(&format!("avg_pool2d #{i}"), &|t| avg_pool2d(&t[0], params), &[x]);
    }
    let x = uniform(&[1, 2, 7, 9], &mut rng, DType::F64, -1.0, 1.0);
    assert_paths_agree("adaptive_avg_pool2d", &|t| adaptive_avg_pool2d(&t[0], (3, 4)), &[x]);
}

/// A convolution's geometry: `padding`, `stride`, `dilation`, `groups`.
fn geometry(padding: usize, stride: usize, dilation: usize, groups: usize) -> Conv2dParams {
    Conv2dParams { padding, stride, dilation, groups }
}

/// Input shape, weight shape and geometry of every convolution the tests run: the 7x7 stride-2
/// stem, 3x3 stride 2, 1x1 stride 2, grouped and dilated, and depthwise at stride 1 and 2, with
/// rows wider than a vector register as in EfficientNet-Lite's first block; and stride-1 3x3 and
/// 5x5 with padding 0 to 2, whose input gradient runs as a convolution of the output gradient
/// (on the direct kernel in f32); and a 7x7 over 64 channels, whose im2col + GEMM forward pass
/// takes its output rows in several blocks, the last one short; and a pointwise (1x1 stride-1)
/// convolution, which reads its input in place.
fn convolutions() -> Vec<([usize; 4], [usize; 4], Conv2dParams)> {
    vec![
        ([1, 3, 15, 13], [4, 3, 7, 7], geometry(3, 2, 1, 1)),
        ([2, 4, 9, 9], [6, 4, 3, 3], geometry(1, 2, 1, 1)),
        ([2, 4, 9, 7], [5, 4, 1, 1], geometry(0, 2, 1, 1)),
        ([2, 4, 9, 9], [6, 2, 3, 3], geometry(2, 1, 2, 2)),
        ([2, 6, 8, 9], [6, 1, 3, 3], geometry(1, 1, 1, 6)),
        ([1, 6, 11, 10], [6, 1, 5, 5], geometry(2, 2, 1, 6)),
        ([2, 32, 22, 20], [32, 1, 3, 3], geometry(0, 1, 1, 32)),
        ([1, 16, 37, 35], [16, 1, 5, 5], geometry(2, 2, 1, 16)),
        ([2, 5, 9, 8], [7, 5, 3, 3], geometry(1, 1, 1, 1)),
        ([2, 4, 8, 7], [6, 4, 3, 3], geometry(0, 1, 1, 1)),
        ([1, 3, 10, 9], [4, 3, 5, 5], geometry(2, 1, 1, 1)),
        ([1, 64, 11, 10], [3, 64, 7, 7], geometry(3, 1, 1, 1)),
        ([2, 6, 5, 7], [4, 6, 1, 1], geometry(0, 1, 1, 1)),
    ]
}

/// Input (values in `lo..hi`), weight and bias of a convolution.
fn convolution_inputs(x: &[usize], w: &[usize], rng: &mut StdRng, (lo, hi): (f64, f64)) -> [Tensor; 3] {
    [
        uniform(x, rng, DType::F64, lo, hi),
        uniform(w, rng, DType::F64, -0.5, 0.5),
        uniform(&[w[0]], rng, DType::F64, -0.5, 0.5),
    ]
}

#[test]
fn convolutions_agree_for_every_geometry() {
    let mut rng = rng();
    for (x, w, p) in convolutions() {
        let inputs = convolution_inputs(&x, &w, &mut rng, (-1.0, 1.0));
        assert_paths_agree(&format!("conv2d {w:?} {p:?}"), &|t| conv2d(&t[0], &t[1], Some(&t[2]), p), &inputs);
    }
    let inputs =
        [uniform(&[2, 3, 11], &mut rng, DType::F64, -1.0, 1.0), uniform(&[4, 3, 3], &mut rng, DType::F64, -0.5, 0.5)];
    assert_paths_agree("conv1d", &|t| conv1d(&t[0], &t[1], None, geometry(1, 2, 1, 1)), &inputs);
}

#[test]
fn fused_convolution_activation_and_pool_agree() {
    let mut rng = rng();
    // With bias, every activation (inputs up to 8 cross ReLU6's cap) and pooling, in training
    // and in inference (the kernels take other paths there).
    for (x, w, p) in convolutions() {
        let inputs = convolution_inputs(&x, &w, &mut rng, (-3.0, 8.0));
        for act in [FusedActivation::Identity, FusedActivation::Relu, FusedActivation::Relu6] {
            for pool in [None, Some(Pool2dParams::square(2))] {
                for train in [true, false] {
                    let op =
                        |t: &[Tensor]| conv2d_activation_max_pool_t(&t[0], &t[1], Some(&t[2]), p, act, pool, train);
                    assert_paths_agree(&format!("conv2d {w:?} {p:?}+{act:?}+{pool:?} train={train}"), &op, &inputs);
                }
            }
        }
    }
}

#[test]
fn uneven_padding_agrees_with_an_explicitly_padded_input() {
    // The depthwise kernel reads uneven ("same", strided) padding in place; the portable path
    // pads the input with candle's ops first. Odd sizes, batch 1, strides 1-3, dilation, and a
    // full (non-depthwise) convolution, which the CPU path pads explicitly too.
    let mut rng = rng();
    let same = |h, w, k, s, d| Padding2d::same(h, w, k, k, s, d);
    let cases = [
        ([1, 3, 7, 9], [3, 1, 3, 3], 2, 1, same(7, 9, 3, 2, 1)),
        ([2, 4, 8, 8], [4, 1, 5, 5], 2, 1, same(8, 8, 5, 2, 1)),
        ([2, 2, 6, 7], [2, 1, 3, 3], 3, 1, same(6, 7, 3, 3, 1)),
        ([1, 3, 9, 5], [3, 1, 3, 3], 1, 2, same(9, 5, 3, 1, 2)),
        ([2, 2, 5, 6], [2, 1, 3, 3], 1, 1, Padding2d { top: 0, bottom: 2, left: 1, right: 0 }),
        ([1, 2, 7, 7], [3, 2, 3, 3], 2, 1, same(7, 7, 3, 2, 1)),
        // Planes large enough for whole register tiles of outputs, then a masked rest.
        ([1, 2, 21, 19], [2, 1, 3, 3], 1, 1, same(21, 19, 3, 1, 1)),
        ([1, 2, 30, 30], [2, 1, 5, 5], 2, 1, same(30, 30, 5, 2, 1)),
    ];
    for (x, w, stride, dilation, pad) in cases {
        let inputs = convolution_inputs(&x, &w, &mut rng, (-3.0, 8.0));
        let groups = x[1] / w[1];
        let p = Conv2dParams { padding: 0, stride, dilation, groups };
        for act in [FusedActivation::Identity, FusedActivation::Relu6] {
            for train in [true, false] {
                let op = |t: &[Tensor]| conv2d_padded_t(&t[0], &t[1], Some(&t[2]), p, pad, act, None, train);
                assert_paths_agree(&format!("conv2d {x:?} {w:?} {p:?} {pad:?}+{act:?} train={train}"), &op, &inputs);
            }
        }
    }
}

#[test]
fn wide_3x3_convolutions_agree_with_candles() {
    // 64 channels and more, 3x3, stride 1: the forward pass runs Winograd's F(2x2, 3x3) (from
    // 128 channels even where the direct kernel applies), and so does the input gradient, as a
    // convolution of the output gradient. Odd and even planes (partial 2x2 tiles at the edges),
    // padding 0-2, batch 1 to 3, with bias and ReLU (the masked gradient) or none, training and
    // inference; every gradient. The 128-channel case has more tile bands than one block holds,
    // so a block spans two images (a chunk of 2 images on 2 threads); the 256-channel case's
    // weight gradient runs by Winograd too.
    let mut rng = rng();
    let relu = FusedActivation::Relu;
    for (x, w, padding, act) in [
        ([3, 64, 7, 5], [64, 64, 3, 3], 1, relu),
        ([1, 72, 6, 6], [65, 72, 3, 3], 0, relu),
        ([2, 64, 5, 8], [64, 64, 3, 3], 2, relu),
        ([3, 128, 12, 11], [130, 128, 3, 3], 1, FusedActivation::Identity),
        ([3, 256, 11, 10], [64, 256, 3, 3], 1, relu),
    ] {
        let inputs = convolution_inputs(&x, &w, &mut rng, (-1.0, 1.0));
        let p = Conv2dParams { padding, stride: 1, dilation: 1, groups: 1 };
        for train in [true, false] {
            let op = |t: &[Tensor]| conv2d_activation_max_pool_t(&t[0], &t[1], Some(&t[2]), p, act, None, train);
            assert_paths_agree(&format!("winograd {x:?} {w:?} p{padding} {act:?} train={train}"), &op, &inputs);
        }
    }
}

#[test]
fn linear_activations_and_the_residual_add_agree() {
    let mut rng = rng();
    // Exact zeros and sixes: the kinks, where PyTorch's gradient (and the kernels') is 0.
    let x = uniform(&[1, 3, 7], &mut rng, DType::F64, -3.0, 8.0).round().unwrap();
    let w = uniform(&[5, 7], &mut rng, DType::F64, -0.5, 0.5);
    let b = uniform(&[5], &mut rng, DType::F64, -0.5, 0.5);
    for act in [FusedActivation::Identity, FusedActivation::Relu, FusedActivation::Relu6] {
        let inputs = [x.clone(), w.clone(), b.clone()];
        assert_paths_agree(&format!("linear+{act:?}"), &|t| linear(&t[0], &t[1], Some(&t[2]), act), &inputs);
        assert_paths_agree(&format!("{act:?}"), &|t| activate(&t[0], act), std::slice::from_ref(&x));
        let y = uniform(&[1, 3, 7], &mut rng, DType::F64, -3.0, 3.0);
        assert_paths_agree(&format!("add+{act:?}"), &|t| add_activate(&t[0], &t[1], act), &[x.clone(), y]);
    }
}

#[test]
fn batch_norm_agrees_in_training_and_evaluation() {
    let mut rng = rng();
    let x = uniform(&[3, 4, 5, 3], &mut rng, DType::F64, -2.0, 3.0);
    let w = uniform(&[4], &mut rng, DType::F64, 0.5, 1.5);
    let b = uniform(&[4], &mut rng, DType::F64, -0.5, 0.5);
    let mean = uniform(&[4], &mut rng, DType::F64, -0.5, 0.5);
    let var = uniform(&[4], &mut rng, DType::F64, 0.5, 2.0);
    for act in [FusedActivation::Identity, FusedActivation::Relu, FusedActivation::Relu6] {
        let inputs = [x.clone(), w.clone(), b.clone()];
        let train = |t: &[Tensor]| Ok(batch_norm_train(&t[0], Some(&t[1]), Some(&t[2]), 1e-5, act)?.0);
        assert_paths_agree(&format!("batch_norm_train+{act:?}"), &train, &inputs);
        let stats = |t: &[Tensor]| {
            let stats = batch_norm_train(&t[0], Some(&t[1]), Some(&t[2]), 1e-5, act)?.1;
            Tensor::cat(&[stats.mean, stats.var], 0)
        };
        let (native, _) = forward_backward(&stats, &inputs).unwrap();
        let portable = with_portable_ops(|| stats(&inputs)).unwrap();
        assert!(max_rel_diff(&portable, &native) < 1e-12, "batch statistics differ");
        let eval = |t: &[Tensor]| {
            let (mean, var) = (mean.to_dtype(t[0].dtype())?, var.to_dtype(t[0].dtype())?);
            batch_norm_eval(&t[0], &mean, &var, Some(&t[1]), Some(&t[2]), 1e-5, act)
        };
        assert_paths_agree(&format!("batch_norm_eval+{act:?}"), &eval, &inputs);
    }
}

#[test]
fn cross_entropy_agrees_and_checks_targets_on_both_paths() {
    let mut rng = rng();
    let logits = uniform(&[5, 4], &mut rng, DType::F64, -3.0, 3.0);
    for (targets, ignore) in [(vec![0u32, 3, 1, 1, 2], None), (vec![0u32, 3, 1, 1, 2], Some(1))] {
        let targets = Tensor::new(targets, logits.device()).unwrap();
        let op = |t: &[Tensor]| cross_entropy(&t[0], &targets, ignore);
        assert_paths_agree(&format!("cross_entropy ignore={ignore:?}"), &op, std::slice::from_ref(&logits));
    }
    let bad = Tensor::new(&[0u32, 4, 1, 1, 2], logits.device()).unwrap();
    let first_line = |e: candle_core::Error| e.to_string().lines().next().unwrap_or_default().to_string();
    let native = first_line(cross_entropy(&logits, &bad, None).unwrap_err());
    let portable = first_line(with_portable_ops(|| cross_entropy(&logits, &bad, None)).unwrap_err());
    assert!(native.contains("target class 4 at row 1"), "{native}");
    assert_eq!(portable, native);
}

#[test]
fn the_portable_switch_is_restored_after_a_panic() {
    let caught = std::panic::catch_unwind(|| with_portable_ops(|| panic!("inside")));
    assert!(caught.is_err());
    assert!(!ember_kernels::portable_ops_forced());
    assert!(with_portable_ops(ember_kernels::portable_ops_forced));
}
