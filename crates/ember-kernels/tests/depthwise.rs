//! Depthwise convolution's fast path (`groups = c_in = c_out`): forward parity with candle's
//! group-by-group convolution for strides, padding and dilation, and finite-difference gradients.

use candle_core::{Device, Tensor};
use ember_kernels::gradcheck::check_gradients;
use ember_kernels::{conv2d, Conv2dParams};

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
