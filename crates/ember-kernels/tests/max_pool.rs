//! Max pooling: forward parity with candle, PyTorch's gradient routing, finite differences.

use candle_core::{DType, Device, Tensor, Var};
use ember_kernels::gradcheck::check_gradients;
use ember_kernels::{max_pool2d, Pool2dParams};

fn distinct_values(shape: (usize, usize, usize, usize), seed: u64) -> Tensor {
    // A permutation of 0..n scaled, so every window has one strict maximum.
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 / n as f64).collect();
    let mut s = seed;
    for i in (1..n).rev() {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        v.swap(i, (s >> 33) as usize % (i + 1));
    }
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

#[test]
fn max_pool_forward_matches_candle_for_non_overlapping_windows() {
    let x = distinct_values((2, 3, 8, 6), 1).to_dtype(DType::F32).unwrap();
    let ours = max_pool2d(&x, Pool2dParams::square(2)).unwrap();
    let candle = x.max_pool2d(2).unwrap();
    assert_eq!(ours.dims(), candle.dims());
    let diff = (ours - candle).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(diff, 0.0);
}

/// The input gradient of one 2x2 window pooled and summed.
fn gradient_of_one_window(x: &[[f32; 2]; 2]) -> Vec<f32> {
    let x = Var::new(&[[*x]], &Device::Cpu).unwrap();
    let y = max_pool2d(x.as_tensor(), Pool2dParams::square(2)).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    grads.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn max_pool_backward_routes_gradient_to_the_single_maximum() {
    // PyTorch: x=[[1,2],[3,4]] pooled 2x2 gives grad [[0,0],[0,1]].
    assert_eq!(gradient_of_one_window(&[[1., 2.], [3., 4.]]), vec![0., 0., 0., 1.]);
}

#[test]
fn max_pool_ties_send_gradient_to_the_first_maximum_only() {
    assert_eq!(gradient_of_one_window(&[[5., 5.], [5., 5.]]), vec![1., 0., 0., 0.]);
}

#[test]
fn overlapping_padded_max_pool_passes_finite_difference_check() {
    let p = Pool2dParams { kernel: (3, 3), stride: (2, 2), padding: (1, 1) };
    let x = distinct_values((2, 2, 7, 6), 3);
    let w = distinct_values((2, 2, 4, 3), 9); // weights the outputs so each gets a distinct gradient
    let report = check_gradients(|xs| (max_pool2d(&xs[0], p)? * &w)?.sum_all(), &[x], 1e-6).unwrap();
    assert_eq!(report.checked, 2 * 2 * 7 * 6);
    assert!(report.max_rel_error < 1e-6, "{report:?}");
}

#[test]
fn max_pool_padding_never_wins_even_for_negative_inputs() {
    let x = Tensor::new(&[[[[-3f32, -2.], [-4., -5.]]]], &Device::Cpu).unwrap();
    let p = Pool2dParams { kernel: (2, 2), stride: (1, 1), padding: (1, 1) };
    let y = max_pool2d(&x, p).unwrap();
    assert_eq!(y.dims(), &[1, 1, 3, 3]);
    let v = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(v, vec![-3., -2., -2., -3., -2., -2., -4., -4., -5.]);
}

#[test]
fn max_pool_rejects_a_kernel_larger_than_the_input() {
    let x = Tensor::zeros((1, 1, 2, 2), DType::F32, &Device::Cpu).unwrap();
    let err = max_pool2d(&x, Pool2dParams::square(3)).unwrap_err().to_string();
    assert!(err.contains("smaller than the kernel"), "{err}");
}

/// Each window's maximum by explicit loops over one plane (NaN if the window holds one,
/// -inf for a window of padding only).
fn naive_max_pool(plane: &[f32], (h, w): (usize, usize), p: Pool2dParams) -> Vec<f32> {
    let ((kh, kw), (sh, sw), (ph, pw)) = (p.kernel, p.stride, p.padding);
    let (oh, ow) = ((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1);
    let mut out = Vec::new();
    for oy in 0..oh {
        for ox in 0..ow {
            let mut m = f32::NEG_INFINITY;
            for y in (oy * sh).saturating_sub(ph)..(oy * sh + kh).saturating_sub(ph).min(h) {
                for x in (ox * sw).saturating_sub(pw)..(ox * sw + kw).saturating_sub(pw).min(w) {
                    let v = plane[y * w + x];
                    m = if v.is_nan() || m.is_nan() { f32::NAN } else { m.max(v) };
                }
            }
            out.push(m);
        }
    }
    out
}

#[test]
fn overlapping_max_pool_equals_every_window_maximum_and_propagates_nan() {
    // ResNet's stem pool (3x3, stride 2, padding 1) and an uneven one, on odd sizes, with a
    // NaN in one window: exactly the windows that hold it give NaN.
    for (p, (h, w)) in [
        (Pool2dParams { kernel: (3, 3), stride: (2, 2), padding: (1, 1) }, (9, 7)),
        (Pool2dParams { kernel: (3, 2), stride: (1, 2), padding: (1, 0) }, (6, 9)),
    ] {
        let x = distinct_values((1, 2, h, w), 3).to_dtype(DType::F32).unwrap();
        let mut values = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        values[w + 2] = f32::NAN;
        let x = Tensor::from_vec(values.clone(), (1, 2, h, w), &Device::Cpu).unwrap();
        let ours = max_pool2d(&x, p).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want: Vec<f32> = values.chunks(h * w).flat_map(|plane| naive_max_pool(plane, (h, w), p)).collect();
        assert_eq!(ours.len(), want.len());
        for (i, (a, b)) in ours.iter().zip(&want).enumerate() {
            assert!(a == b || (a.is_nan() && b.is_nan()), "{p:?} cell {i}: {a} vs {b}");
        }
        assert!(ours.iter().any(|v| v.is_nan()) && ours.iter().any(|v| !v.is_nan()));
    }
}

/// Where each output cell's gradient goes by PyTorch's rule, by explicit loops over one plane:
/// the window's first maximum in row-major order (its first NaN if it holds one).
fn naive_routing(plane: &[f32], (h, w): (usize, usize), p: Pool2dParams, upstream: &[f32]) -> Vec<f32> {
    let ((kh, kw), (sh, sw), (ph, pw)) = (p.kernel, p.stride, p.padding);
    let (oh, ow) = ((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1);
    let mut grad = vec![0f32; h * w];
    for oy in 0..oh {
        for ox in 0..ow {
            let mut best: Option<(f32, usize)> = None;
            for y in (oy * sh).saturating_sub(ph)..(oy * sh + kh).saturating_sub(ph).min(h) {
                for x in (ox * sw).saturating_sub(pw)..(ox * sw + kw).saturating_sub(pw).min(w) {
                    let v = plane[y * w + x];
                    let better = match best {
                        None => true,
                        Some((m, _)) => v > m || (v.is_nan() && !m.is_nan()),
                    };
                    if better {
                        best = Some((v, y * w + x));
                    }
                }
            }
            if let Some((_, at)) = best {
                grad[at] += upstream[oy * ow + ox];
            }
        }
    }
    grad
}

#[test]
fn training_max_pool_routes_gradients_by_its_recorded_argmax_over_wide_rows() {
    // Training records each window's first maximum in the forward pass (16 windows at a time
    // on AVX-512 CPUs); rows of 70 columns put windows past the first 16 of a row, small
    // integers make ties common, and one plane holds a NaN.
    for p in [
        Pool2dParams { kernel: (3, 3), stride: (2, 2), padding: (1, 1) },
        Pool2dParams { kernel: (3, 3), stride: (1, 1), padding: (1, 1) },
        Pool2dParams { kernel: (2, 3), stride: (1, 3), padding: (0, 1) },
        Pool2dParams { kernel: (5, 5), stride: (2, 2), padding: (2, 2) },
    ] {
        let (h, w) = (11, 70);
        let mut values: Vec<f32> = (0..2 * h * w).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
        values[h * w + 3 * w + 40] = f32::NAN;
        let x = Var::from_tensor(&Tensor::from_vec(values.clone(), (1, 2, h, w), &Device::Cpu).unwrap()).unwrap();
        let y = max_pool2d(&x, p).unwrap();
        let (oh, ow) = (y.dims()[2], y.dims()[3]);
        let upstream: Vec<f32> = (0..2 * oh * ow).map(|i| 1.0 + i as f32 / 64.0).collect();
        let r = Tensor::from_vec(upstream.clone(), y.shape(), &Device::Cpu).unwrap();
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let ours = grads.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want: Vec<f32> = values
            .chunks(h * w)
            .zip(upstream.chunks(oh * ow))
            .flat_map(|(plane, up)| naive_routing(plane, (h, w), p, up))
            .collect();
        for (i, (a, b)) in ours.iter().zip(&want).enumerate() {
            assert!(a == b, "{p:?} input {i}: gradient {a} vs {b}");
        }
        assert!(want.iter().filter(|v| **v != 0.0).count() > oh * ow / 2, "{p:?}: too few routed");
    }
}
