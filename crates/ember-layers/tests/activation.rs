//! Every activation against PyTorch (`fixtures/gen_activations.py`) and finite differences.

mod common;

use candle_nn::Module;
use common::{cases, gradcheck_with_tol, parity, random};
use ember_layers::Activation;

const ALL: [(&str, Activation); 12] = [
    ("relu", Activation::Relu),
    ("relu6", Activation::Relu6),
    ("leaky_relu", Activation::LeakyRelu(0.1)),
    ("elu", Activation::Elu(0.7)),
    ("gelu", Activation::Gelu),
    ("gelu_tanh", Activation::GeluTanh),
    ("silu", Activation::Silu),
    ("hardswish", Activation::HardSwish),
    ("sigmoid", Activation::Sigmoid),
    ("tanh", Activation::Tanh),
    ("softmax", Activation::Softmax(1)),
    ("log_softmax", Activation::LogSoftmax(1)),
];

#[test]
fn activations_match_pytorch() {
    let all = cases(include_str!("fixtures/activations.json"));
    for (name, act) in ALL {
        parity(name, &all[name], &[], |_, x| act.forward(x));
    }
}

#[test]
fn activations_pass_finite_difference_check() {
    // Keep inputs away from the kinks at 0, -3, 3 and 6.
    let x = random(&[3, 4, 5], 11);
    let x = (x.sign().unwrap() * 0.1 + &x).unwrap();
    let away = |v: f64| (v + 3.0).abs() > 0.05 && (v - 3.0).abs() > 0.05 && (v - 6.0).abs() > 0.05;
    assert!(x.flatten_all().unwrap().to_vec1::<f64>().unwrap().into_iter().all(away));
    for (name, act) in ALL.into_iter().chain([("identity", Activation::Identity)]) {
        let report = gradcheck_with_tol(1.0, x.clone(), &[], |_, x| act.forward(x));
        println!("{name}: {report:?}");
        assert!(report.checked == 60 && report.max_rel_error < 1e-6, "{name}: {report:?}");
    }
}

#[test]
fn softmax_rejects_out_of_range_dim() {
    let err = Activation::Softmax(2).forward(&random(&[2, 3], 0)).unwrap_err().to_string();
    assert!(err.contains("dim 2") && err.contains("[2, 3]"), "{err}");
}
