//! Depthwise convolution's fast path (`groups = c_in = c_out`): forward parity with candle's
//! group-by-group convolution for strides, padding and dilation, and finite-difference gradients.

use candle_core::{Device, Tensor};
use ember_kernels::gradcheck::check_gradients;
use ember_kernels::{conv2d, conv2d_padded_t, Conv2dParams, FusedActivation, Padding2d};

fn ramp(shape: (usize, usize, usize, usize), scale: f64) -> Tensor {
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    let v: Vec<f64> = (0..n).map(|i| ((i * 7919) % 101) as f64 / 101.0 * scale - scale / 2.0).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

#[test]
fn depthwise_conv2d_matches_candle_grouped_convolution() {
    // (c, h, w, k, stride, padding, dilation)
    for (c, h, w, k, stride, padding, dilation) in [
        (3, 7, 9, 3, 1, 1, 1),
        (4, 8, 8, 3, 2, 1, 1),
        (5, 9, 11, 5, 2, 2, 1),
        (2, 10, 10, 3, 1, 2, 2),
        (3, 6, 7, 3, 3, 0, 1),
    ] {
        let x = ramp((2, c, h, w), 2.0);
        let wgt = ramp((c, 1, k, k), 1.0);
        let bias = ramp((1, c, 1, 1), 1.0).flatten_all().unwrap();
        let p = Conv2dParams { padding, stride, dilation, groups: c };
        let ours = conv2d(&x, &wgt, Some(&bias), p).unwrap();
        let theirs = x
            .conv2d(&wgt, padding, stride, dilation, c)
            .unwrap()
            .broadcast_add(&bias.reshape((1, c, 1, 1)).unwrap())
            .unwrap();
        assert_eq!(ours.dims(), theirs.dims(), "case c{c} {h}x{w} k{k} s{stride} p{padding} d{dilation}");
        let diff = (ours - theirs).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
        assert!(diff < 1e-12, "case c{c} {h}x{w} k{k} s{stride}: max difference {diff}");
    }
}

#[test]
fn depthwise_conv2d_passes_finite_difference_check() {
    for (stride, padding, dilation) in [(1, 1, 1), (2, 1, 1), (2, 0, 2)] {
        let x = ramp((1, 3, 7, 6), 2.0);
        let wgt = ramp((3, 1, 3, 3), 1.0);
        let p = Conv2dParams { padding, stride, dilation, groups: 3 };
        let report = check_gradients(
            |t| {
                let y = conv2d(&t[0], &t[1], None, p)?;
                (&y * &y)?.sum_all()
            },
            &[x, wgt],
            1e-6,
        )
        .unwrap();
        assert!(report.max_rel_error < 1e-5, "stride {stride}: {report:?}");
    }
}

#[test]
fn uneven_padding_passes_finite_difference_check() {
    // TensorFlow's "same" padding with stride 2 (one more row and column at the end), and an
    // arbitrary uneven padding, read in place by the depthwise kernel.
    for (h, w, k, stride, pad) in [
        (7, 6, 3, 2, Padding2d::same(7, 6, 3, 3, 2, 1)),
        (6, 6, 5, 2, Padding2d::same(6, 6, 5, 5, 2, 1)),
        (5, 7, 3, 1, Padding2d { top: 2, bottom: 0, left: 0, right: 1 }),
    ] {
        let x = ramp((1, 3, h, w), 2.0);
        let wgt = ramp((3, 1, k, k), 1.0);
        let bias = ramp((1, 3, 1, 1), 1.0).flatten_all().unwrap();
        let p = Conv2dParams { padding: 0, stride, dilation: 1, groups: 3 };
        let report = check_gradients(
            |t| {
                let y = conv2d_padded_t(&t[0], &t[1], Some(&t[2]), p, pad, FusedActivation::Identity, None, true)?;
                (&y * &y)?.sum_all()
            },
            &[x, wgt, bias],
            1e-6,
        )
        .unwrap();
        assert!(report.max_rel_error < 1e-5, "{h}x{w} k{k} s{stride} {pad:?}: {report:?}");
    }
}

#[test]
fn same_padding_gives_ceil_of_size_over_stride() {
    for (size, k, stride, expected) in [(224, 3, 2, (0, 1)), (112, 5, 2, (1, 2)), (7, 3, 1, (1, 1)), (5, 3, 3, (0, 1))]
    {
        let pad = Padding2d::same(size, size, k, k, stride, 1);
        assert_eq!((pad.top, pad.bottom), expected, "size {size} k{k} s{stride}");
        let x = ramp((1, 2, size, size), 1.0);
        let p = Conv2dParams { padding: 0, stride, dilation: 1, groups: 2 };
        let y = conv2d_padded_t(&x, &ramp((2, 1, k, k), 1.0), None, p, pad, FusedActivation::Identity, None, false)
            .unwrap();
        assert_eq!(y.dims(), [1, 2, size.div_ceil(stride), size.div_ceil(stride)]);
    }
}

#[test]
fn padding_too_large_to_add_is_an_error_naming_it() {
    let x = ramp((1, 2, 4, 4), 1.0);
    let p = Conv2dParams { padding: 0, stride: 1, dilation: 1, groups: 2 };
    let pad = Padding2d { top: 1, bottom: usize::MAX, left: 0, right: 0 };
    let err = conv2d_padded_t(&x, &ramp((2, 1, 3, 3), 1.0), None, p, pad, FusedActivation::Identity, None, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("padding") && err.contains("overflows"), "{err}");
}
