//! Grouped, depthwise, "same", 1-D and transposed convolutions: PyTorch parity
//! (`fixtures/gen_conv.py`) and finite differences.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::Module;
use common::{cases, gradcheck, parity, random};
use ember_kernels::{Conv2dParams, ConvTranspose2dParams};
use ember_layers::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, ParamStore};
use serde_json::Value;

fn case(name: &str) -> Value {
    cases(include_str!("fixtures/conv.json"))[name].clone()
}

fn meta(case: &Value, key: &str) -> usize {
    case["meta"][key].as_u64().unwrap() as usize
}

/// A case's stride, padding, dilation and groups.
fn conv_params(case: &Value) -> Conv2dParams {
    Conv2dParams {
        stride: meta(case, "stride"),
        padding: meta(case, "padding"),
        dilation: meta(case, "dilation"),
        groups: meta(case, "groups"),
    }
}

/// A case's input channels, output channels and kernel size.
fn sizes(case: &Value) -> (usize, usize, usize) {
    (meta(case, "c_in"), meta(case, "c_out"), meta(case, "kernel"))
}

fn conv2d_config(case: &Value, same: bool) -> Conv2dConfig {
    let (c_in, c_out, kernel) = sizes(case);
    Conv2dConfig { params: conv_params(case), same_padding: same, ..Conv2dConfig::new(c_in, c_out, kernel) }
}

fn conv1d_config(case: &Value, same: bool) -> Conv1dConfig {
    let (c_in, c_out, kernel) = sizes(case);
    Conv1dConfig { params: conv_params(case), same_padding: same, ..Conv1dConfig::new(c_in, c_out, kernel) }
}

fn transpose_config(case: &Value) -> ConvTranspose2dConfig {
    let params = ConvTranspose2dParams {
        stride: meta(case, "stride"),
        padding: meta(case, "padding"),
        output_padding: meta(case, "output_padding"),
        dilation: meta(case, "dilation"),
    };
    let (c_in, c_out, kernel) = sizes(case);
    ConvTranspose2dConfig { params, ..ConvTranspose2dConfig::new(c_in, c_out, kernel) }
}

const WB: &[&str] = &["weight", "bias"];

/// The layer a fixture case runs through (`same`: PyTorch's `padding="same"`).
#[derive(Clone, Copy)]
enum Layer {
    Conv2d { same: bool },
    Conv1d { same: bool },
    ConvTranspose2d,
}

#[test]
fn grouped_depthwise_same_strided_1d_and_transposed_convolutions_match_pytorch() {
    for (name, layer) in [
        ("conv2d_grouped", Layer::Conv2d { same: false }),
        ("conv2d_depthwise", Layer::Conv2d { same: false }),
        ("conv2d_same_even_kernel", Layer::Conv2d { same: true }),
        ("conv1d_s2_p1", Layer::Conv1d { same: false }),
        ("conv1d_same_dilated", Layer::Conv1d { same: true }),
        ("conv_transpose2d", Layer::ConvTranspose2d),
    ] {
        let c = case(name);
        parity(name, &c, WB, |vb, x| match layer {
            Layer::Conv2d { same } => Conv2d::new(&conv2d_config(&c, same), vb)?.forward(x),
            Layer::Conv1d { same } => Conv1d::new(&conv1d_config(&c, same), vb)?.forward(x),
            Layer::ConvTranspose2d => ConvTranspose2d::new(&transpose_config(&c), vb)?.forward(x),
        });
    }
}

#[test]
fn grouped_and_depthwise_conv2d_pass_finite_difference_check() {
    for (groups, c_in, c_out, stride) in [(2, 4, 6, 2), (3, 3, 3, 1), (3, 3, 6, 2)] {
        let cfg = Conv2dConfig {
            params: Conv2dParams { stride, padding: 1, dilation: 1, groups },
            ..Conv2dConfig::new(c_in, c_out, 3)
        };
        gradcheck(
            random(&[2, c_in, 6, 5], 1),
            &[("weight", &[c_out, c_in / groups, 3, 3]), ("bias", &[c_out])],
            |vb, x| Conv2d::new(&cfg, vb)?.forward(x),
        );
    }
}

#[test]
fn conv2d_same_padding_passes_finite_difference_check() {
    let cfg = Conv2dConfig {
        same_padding: true,
        params: Conv2dParams { dilation: 2, ..Default::default() },
        ..Conv2dConfig::new(2, 3, 2)
    };
    gradcheck(random(&[1, 2, 5, 4], 2), &[("weight", &[3, 2, 2, 2]), ("bias", &[3])], |vb, x| {
        let y = Conv2d::new(&cfg, vb)?.forward(x)?;
        assert_eq!(y.dims(), &[1, 3, 5, 4]);
        Ok(y)
    });
}

#[test]
fn conv1d_passes_finite_difference_check() {
    let cfg = Conv1dConfig {
        params: Conv2dParams { stride: 2, padding: 1, dilation: 1, groups: 2 },
        ..Conv1dConfig::new(4, 2, 3)
    };
    gradcheck(random(&[2, 4, 9], 3), &[("weight", &[2, 2, 3]), ("bias", &[2])], |vb, x| {
        Conv1d::new(&cfg, vb)?.forward(x)
    });
}

#[test]
fn conv_transpose2d_passes_finite_difference_check() {
    for params in [
        ConvTranspose2dParams::default(),
        ConvTranspose2dParams { stride: 2, padding: 1, output_padding: 1, dilation: 1 },
    ] {
        let cfg = ConvTranspose2dConfig { params, ..ConvTranspose2dConfig::new(2, 3, 3) };
        gradcheck(random(&[2, 2, 4, 3], 4), &[("weight", &[2, 3, 3, 3]), ("bias", &[3])], |vb, x| {
            ConvTranspose2d::new(&cfg, vb)?.forward(x)
        });
    }
}

#[test]
fn conv1d_and_transpose_wrong_channels_name_layer_and_shapes() {
    let store = ParamStore::new(0, &Device::Cpu);
    let conv = Conv1d::new(&Conv1dConfig::new(3, 8, 3), store.var_builder(DType::F32).pp("encoder.conv")).unwrap();
    let err = conv.forward(&Tensor::zeros((2, 4, 10), DType::F32, &Device::Cpu).unwrap()).unwrap_err().to_string();
    assert!(err.contains("encoder.conv") && err.contains("(batch, 3, length)") && err.contains("[2, 4, 10]"), "{err}");
    let up =
        ConvTranspose2d::new(&ConvTranspose2dConfig::new(3, 8, 2), store.var_builder(DType::F32).pp("up")).unwrap();
    let err = up.forward(&Tensor::zeros((2, 4, 5, 5), DType::F32, &Device::Cpu).unwrap()).unwrap_err().to_string();
    assert!(err.contains("up") && err.contains("[2, 4, 5, 5]"), "{err}");
}

#[test]
fn strided_same_padding_is_tensorflows_with_the_extra_row_at_the_end() {
    // Keras/TensorFlow `padding="same"` with stride 2: a 7x6 input gives ceil(7/2) x ceil(6/2)
    // = 4x3 outputs; the rows need (4-1)·2 + 3 - 7 = 2 padding rows (1 above, 1 below), the
    // columns (3-1)·2 + 3 - 6 = 1 (none left, 1 right). Depthwise and full convolutions.
    let store = ParamStore::new(0, &Device::Cpu);
    let x = random(&[2, 4, 7, 6], 5);
    for (groups, c_out) in [(4, 4), (1, 3)] {
        let params = Conv2dParams { stride: 2, groups, ..Default::default() };
        let cfg = Conv2dConfig { same_padding: true, params, ..Conv2dConfig::new(4, c_out, 3) };
        let conv = Conv2d::new(&cfg, store.var_builder(DType::F64).pp(format!("same{groups}"))).unwrap();
        let y = conv.forward(&x).unwrap();
        assert_eq!(y.dims(), [2, c_out, 4, 3]);
        let padded = x.pad_with_zeros(2, 1, 1).unwrap().pad_with_zeros(3, 0, 1).unwrap();
        let plain = Conv2d::new(
            &Conv2dConfig { params, ..Conv2dConfig::new(4, c_out, 3) },
            store.var_builder(DType::F64).pp(format!("same{groups}")),
        )
        .unwrap();
        let d = (y - plain.forward(&padded).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>();
        assert!(d.unwrap() < 1e-12, "groups {groups}");
    }
    let cfg = Conv1dConfig {
        same_padding: true,
        params: Conv2dParams { stride: 2, ..Default::default() },
        ..Conv1dConfig::new(2, 3, 4)
    };
    let y = Conv1d::new(&cfg, store.var_builder(DType::F64).pp("same1d")).unwrap().forward(&random(&[1, 2, 9], 6));
    assert_eq!(y.unwrap().dims(), [1, 3, 5]);
}
