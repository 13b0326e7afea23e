//! Layers against PyTorch: outputs and gradients (fixtures from `fixtures/gen_layers.py`).

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Module;
use ember_kernels::Conv2dParams;
use ember_layers::{loss, Activation, Conv2d, Conv2dConfig, Linear, MaxPool2d, ParamStore};
use serde_json::Value;

fn cases() -> Value {
    let f: Value = serde_json::from_str(include_str!("fixtures/layers.json")).unwrap();
    f["cases"].clone()
}

fn tensor(case: &Value, key: &str) -> Tensor {
    let data: Vec<f32> = case[key].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let shape: Vec<usize> =
        case[format!("{key}_shape")].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

fn values(case: &Value, key: &str) -> Vec<f32> {
    case[key].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()
}

/// max |ours - reference| / max |reference|.
fn rel_error(ours: &Tensor, reference: &[f32]) -> f32 {
    let ours = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(ours.len(), reference.len());
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    ours.iter().zip(reference).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max) / scale
}

/// Runs `forward` on the case's input `x` (as a Var), back-propagates `grad_out`, and checks the
/// output, the input gradient and the gradients of `params`.
fn check(name: &str, forward: impl Fn(&Tensor) -> Tensor, params: &[(&str, Var)]) {
    let case = &cases()[name];
    let x = Var::from_tensor(&tensor(case, "x")).unwrap();
    let y = forward(x.as_tensor());
    let grad_out = Tensor::from_vec(values(case, "grad_out"), y.shape(), &Device::Cpu).unwrap();
    let grads = (&y * grad_out).unwrap().sum_all().unwrap().backward().unwrap();
    let mut checks = vec![
        ("y".to_string(), y.clone(), values(case, "y")),
        ("grad_x".into(), grads.get(&x).unwrap().clone(), values(case, "grad_x")),
    ];
    for (p, var) in params {
        checks.push((format!("grad_{p}"), grads.get(var).unwrap().clone(), values(case, &format!("grad_{p}"))));
    }
    for (what, ours, reference) in checks {
        let err = rel_error(&ours, &reference);
        assert!(err <= 1e-4, "{name}: {what}: relative error {err}");
    }
}

fn conv_case(name: &str) {
    let case = &cases()[name];
    let meta = &case["meta"];
    let get = |k: &str| meta[k].as_u64().unwrap() as usize;
    let store = ParamStore::new(0, &Device::Cpu);
    let cfg = Conv2dConfig {
        params: Conv2dParams { stride: get("stride"), padding: get("padding"), dilation: get("dilation"), groups: 1 },
        ..Conv2dConfig::new(3, 4, 3)
    };
    let conv = Conv2d::new(&cfg, store.var_builder(DType::F32).pp("conv")).unwrap();
    store.assign("conv.weight", &tensor(case, "weight")).unwrap();
    store.assign("conv.bias", &tensor(case, "bias")).unwrap();
    // Parameters are read at construction: rebuild so the layer sees the assigned values.
    let conv = Conv2d::new(conv.config(), store.var_builder(DType::F32).pp("conv")).unwrap();
    let params = [("weight", store.get("conv.weight").unwrap()), ("bias", store.get("conv.bias").unwrap())];
    check(name, |x| conv.forward(x).unwrap(), &params);
}

#[test]
fn conv2d_matches_pytorch() {
    conv_case("conv2d_plain");
}

#[test]
fn conv2d_strided_padded_matches_pytorch() {
    conv_case("conv2d_s2_p1");
}

#[test]
fn conv2d_dilated_matches_pytorch() {
    conv_case("conv2d_d2_p2");
}

#[test]
fn linear_matches_pytorch() {
    let case = &cases()["linear"];
    let store = ParamStore::new(0, &Device::Cpu);
    Linear::new(7, 5, true, store.var_builder(DType::F32).pp("fc")).unwrap();
    store.assign("fc.weight", &tensor(case, "weight")).unwrap();
    store.assign("fc.bias", &tensor(case, "bias")).unwrap();
    let fc = Linear::new(7, 5, true, store.var_builder(DType::F32).pp("fc")).unwrap();
    let params = [("weight", store.get("fc.weight").unwrap()), ("bias", store.get("fc.bias").unwrap())];
    check("linear", |x| fc.forward(x).unwrap(), &params);
}

#[test]
fn overlapping_max_pool_matches_pytorch() {
    check("max_pool_3x3_s2_p1", |x| MaxPool2d::new(3, 2, 1).forward(x).unwrap(), &[]);
}

#[test]
fn max_pool_matches_pytorch() {
    check("max_pool_2x2", |x| MaxPool2d::new(2, 2, 0).forward(x).unwrap(), &[]);
}

#[test]
fn relu_matches_pytorch() {
    check("relu", |x| Activation::Relu.forward(x).unwrap(), &[]);
}

#[test]
fn cross_entropy_matches_pytorch() {
    let case = &cases()["cross_entropy"];
    let targets: Vec<u32> =
        case["meta"]["targets"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let targets = Tensor::new(targets.as_slice(), &Device::Cpu).unwrap();
    check("cross_entropy", |x| loss::cross_entropy(x, &targets).unwrap().reshape(1).unwrap(), &[]);
}
