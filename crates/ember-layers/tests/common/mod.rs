//! Helpers shared by the integration tests: fixture access, PyTorch parity and f64
//! finite-difference checks of layers built from a `VarBuilder`.
#![allow(dead_code)]

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarBuilder;
use ember_kernels::gradcheck::{check_gradients, GradCheckReport};
use ember_kernels::init::Init;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;

/// Largest relative error the parity tests accept (f32 against PyTorch).
pub const PARITY_TOL: f32 = 1e-4;
/// Largest relative error the finite-difference checks accept (f64).
pub const GRAD_TOL: f64 = 1e-6;

pub fn cases(json: &str) -> Value {
    let f: Value = serde_json::from_str(json).unwrap();
    f["cases"].clone()
}

pub fn values(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()
}

pub fn shape(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect()
}

pub fn tensor(case: &Value, key: &str) -> Tensor {
    Tensor::from_vec(values(&case[key]), shape(&case[format!("{key}_shape")]), &Device::Cpu).unwrap()
}

/// max |ours - reference| / max |reference|.
pub fn rel_error(ours: &Tensor, reference: &[f32]) -> f32 {
    let ours = ours.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(ours.len(), reference.len(), "element count");
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    ours.iter().zip(reference).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max) / scale
}

/// Asserts every `(what, ours, reference)` is within [`PARITY_TOL`]; returns the largest error.
pub fn assert_close(name: &str, checks: Vec<(String, Tensor, Vec<f32>)>) -> f32 {
    let mut worst = 0f32;
    for (what, ours, reference) in checks {
        let err = rel_error(&ours, &reference);
        assert!(err <= PARITY_TOL, "{name}: {what}: relative error {err}");
        worst = worst.max(err);
    }
    println!("{name}: max relative error {worst:e}");
    worst
}

/// Runs `forward(vb, x)` on the case's `x` with the case's parameters `params` (read through
/// `vb`), back-propagates `sum(y * grad_out)` and compares `y`, `grad_x` and every `grad_{param}`
/// with PyTorch's.
pub fn parity<F>(name: &str, case: &Value, params: &[&str], forward: F) -> f32
where
    F: Fn(VarBuilder, &Tensor) -> Result<Tensor>,
{
    let x = Var::from_tensor(&tensor(case, "x")).unwrap();
    let vars: Vec<(String, Var)> =
        params.iter().map(|p| (p.to_string(), Var::from_tensor(&tensor(case, p)).unwrap())).collect();
    let map: HashMap<String, Tensor> = vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
    let vb = VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
    let y = forward(vb, x.as_tensor()).unwrap();
    let grad_out = Tensor::from_vec(values(&case["grad_out"]), y.shape(), &Device::Cpu).unwrap();
    let grads = (&y * grad_out).unwrap().sum_all().unwrap().backward().unwrap();
    let mut checks = vec![
        ("y".to_string(), y.clone(), values(&case["y"])),
        ("grad_x".into(), grads.get(&x).unwrap().clone(), values(&case["grad_x"])),
    ];
    for (p, var) in &vars {
        checks.push((format!("grad_{p}"), grads.get(var).unwrap().clone(), values(&case[format!("grad_{p}")])));
    }
    assert_close(name, checks)
}

pub fn random(shape: &[usize], seed: u64) -> Tensor {
    Init::Normal { mean: 0.0, std: 1.0 }
        .sample(shape, DType::F64, &Device::Cpu, &mut StdRng::seed_from_u64(seed))
        .unwrap()
}

/// Finite-difference check (f64) of `forward(vb, x)` with respect to `x` and to every named
/// parameter, all drawn from N(0, 1). Buffers (`*running_mean`, `*running_var`) are read through
/// `vb` too but held constant (`running_var` from |N(0, 1)| + 0.5): they carry no gradient.
pub fn gradcheck<F>(x: Tensor, params: &[(&str, &[usize])], forward: F) -> GradCheckReport
where
    F: Fn(VarBuilder, &Tensor) -> Result<Tensor>,
{
    gradcheck_with_tol(GRAD_TOL, x, params, forward)
}

/// [`gradcheck`] with a custom tolerance.
pub fn gradcheck_with_tol<F>(tol: f64, x: Tensor, params: &[(&str, &[usize])], forward: F) -> GradCheckReport
where
    F: Fn(VarBuilder, &Tensor) -> Result<Tensor>,
{
    let is_buffer = |name: &str| name.ends_with("running_mean") || name.ends_with("running_var");
    let mut inputs = vec![x];
    let mut trained = Vec::new();
    let mut buffers = HashMap::new();
    for (i, (name, shape)) in params.iter().enumerate() {
        let t = random(shape, 100 + i as u64);
        if name.ends_with("running_var") {
            buffers.insert(name.to_string(), (t.abs().unwrap() + 0.5).unwrap());
        } else if is_buffer(name) {
            buffers.insert(name.to_string(), t);
        } else {
            trained.push(name.to_string());
            inputs.push(t);
        }
    }
    let build = |t: &[Tensor]| {
        // Fresh copies of the buffers, so a train-mode update cannot leak into the next call.
        let mut map: HashMap<String, Tensor> = buffers.iter().map(|(k, v)| (k.clone(), v.copy().unwrap())).collect();
        map.extend(trained.iter().zip(&t[1..]).map(|(name, t)| (name.clone(), t.clone())));
        VarBuilder::from_tensors(map, DType::F64, &Device::Cpu)
    };
    let y = forward(build(&inputs), &inputs[0]).unwrap();
    let up = random(y.dims(), 7);
    let report = check_gradients(|t| (forward(build(t), &t[0])? * &up)?.sum_all(), &inputs, 1e-6).unwrap();
    assert!(report.max_rel_error < tol, "{report:?}");
    report
}
