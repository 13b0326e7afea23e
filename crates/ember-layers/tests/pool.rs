//! Average, adaptive and global average pooling: PyTorch parity (`fixtures/gen_pool.py`) and
//! finite differences, overlapping windows and padding included.

mod common;

use candle_nn::Module;
use common::{cases, gradcheck, parity, random};
use ember_kernels::Pool2dParams;
use ember_layers::{AdaptiveAvgPool2d, AvgPool2d, GlobalAvgPool2d};
use serde_json::Value;

fn case(name: &str) -> Value {
    cases(include_str!("fixtures/pool.json"))[name].clone()
}

#[test]
fn overlapping_padded_avg_pool_matches_pytorch() {
    parity("avg_pool_3x3_s2_p1", &case("avg_pool_3x3_s2_p1"), &[], |_, x| AvgPool2d::new(3, 2, 1).forward(x));
}

#[test]
fn avg_pool_matches_pytorch() {
    parity("avg_pool_2x2", &case("avg_pool_2x2"), &[], |_, x| AvgPool2d::new(2, 2, 0).forward(x));
}

#[test]
fn rectangular_stride_one_avg_pool_matches_pytorch() {
    let params = Pool2dParams { kernel: (3, 2), stride: (1, 1), padding: (0, 0) };
    parity("avg_pool_3x2_s1", &case("avg_pool_3x2_s1"), &[], |_, x| ember_kernels::avg_pool2d(x, params));
}

#[test]
fn adaptive_avg_pool_matches_pytorch() {
    parity("adaptive_avg_pool_3x4", &case("adaptive_avg_pool_3x4"), &[], |_, x| {
        AdaptiveAvgPool2d::new((3, 4)).forward(x)
    });
}

#[test]
fn global_avg_pool_matches_pytorch() {
    parity("global_avg_pool", &case("global_avg_pool"), &[], |_, x| GlobalAvgPool2d.forward(x));
}

#[test]
fn pools_pass_finite_difference_check() {
    gradcheck(random(&[2, 2, 7, 6], 1), &[], |_, x| AvgPool2d::new(3, 2, 1).forward(x));
    gradcheck(random(&[1, 2, 6, 6], 2), &[], |_, x| AvgPool2d::new(2, 2, 0).forward(x));
    gradcheck(random(&[2, 2, 7, 5], 3), &[], |_, x| AdaptiveAvgPool2d::new((3, 2)).forward(x));
    gradcheck(random(&[2, 3, 4, 5], 4), &[], |_, x| GlobalAvgPool2d.forward(x));
}

#[test]
fn avg_pool_rejects_wrong_rank_and_too_small_input() {
    let x = random(&[4, 4], 1);
    let err = AvgPool2d::new(2, 2, 0).forward(&x).unwrap_err().to_string();
    assert!(err.contains("avg_pool2d") && err.contains("[4, 4]"), "{err}");
    let err = AvgPool2d::new(5, 1, 0).forward(&random(&[1, 1, 3, 3], 1)).unwrap_err().to_string();
    assert!(err.contains("smaller than"), "{err}");
    let err = GlobalAvgPool2d.forward(&random(&[2, 3, 4], 1)).unwrap_err().to_string();
    assert!(err.contains("[2, 3, 4]"), "{err}");
}
