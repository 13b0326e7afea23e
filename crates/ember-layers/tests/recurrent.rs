//! Bidirectional 2-layer LSTM, GRU and RNN against PyTorch (`fixtures/gen_rnn.py`): outputs,
//! final states and every gradient; finite differences; shape errors.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use common::{assert_close, cases, gradcheck, random, tensor, values};
use ember_layers::{Gru, Lstm, ParamStore, RecurrentConfig, RecurrentOutput, Rnn, RnnNonlinearity};
use serde_json::Value;

fn config(case: &Value) -> RecurrentConfig {
    let m = &case["meta"];
    RecurrentConfig {
        input_size: m["input_size"].as_u64().unwrap() as usize,
        hidden_size: m["hidden_size"].as_u64().unwrap() as usize,
        num_layers: m["num_layers"].as_u64().unwrap() as usize,
        bidirectional: m["bidirectional"].as_bool().unwrap(),
        batch_first: m["batch_first"].as_bool().unwrap(),
        bias: true,
    }
}

/// Builds the layer from the case's PyTorch-named parameters, runs it, back-propagates the
/// recorded upstream gradients and compares everything.
fn check(
    name: &str,
    case: &Value,
    run: impl Fn(VarBuilder, &Tensor, Option<&Tensor>, Option<&Tensor>) -> RecurrentOutput,
) {
    let x = Var::from_tensor(&tensor(case, "x")).unwrap();
    let state = |k: &str| case.get(k).map(|_| Var::from_tensor(&tensor_like(case, k)).unwrap());
    let (h0, c0) = (state("h0"), state("c0"));
    let params: Vec<(String, Var)> = case["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let shape = param_shape(k, config(case), name);
            (k.clone(), Var::from_tensor(&Tensor::from_vec(values(v), shape, &Device::Cpu).unwrap()).unwrap())
        })
        .collect();
    let map: HashMap<String, Tensor> = params.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
    let vb = VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
    let out = run(vb, x.as_tensor(), h0.as_ref().map(|v| v.as_tensor()), c0.as_ref().map(|v| v.as_tensor()));
    let mut outputs = vec![("output", out.output.clone()), ("h_n", out.h_n.clone())];
    if let Some(c_n) = &out.c_n {
        outputs.push(("c_n", c_n.clone()));
    }
    let mut total = Tensor::zeros((), DType::F32, &Device::Cpu).unwrap();
    let mut checks = Vec::new();
    for (k, y) in &outputs {
        let go = Tensor::from_vec(values(&case[format!("grad_out_{k}")]), y.shape(), &Device::Cpu).unwrap();
        total = (total + (y * go).unwrap().sum_all().unwrap()).unwrap();
        checks.push((k.to_string(), y.clone(), values(&case[*k])));
    }
    let grads = total.backward().unwrap();
    checks.push(("grad_x".into(), grads.get(&x).unwrap().clone(), values(&case["grad_x"])));
    for (k, v) in [("h0", &h0), ("c0", &c0)] {
        if let Some(v) = v {
            checks.push((format!("grad_{k}"), grads.get(v).unwrap().clone(), values(&case[format!("grad_{k}")])));
        }
    }
    for (k, var) in &params {
        checks.push((format!("grad_{k}"), grads.get(var).unwrap().clone(), values(&case["grads"][k])));
    }
    assert_eq!(params.len(), 16, "2 layers x 2 directions x 4 tensors");
    assert_close(name, checks);
}

fn tensor_like(case: &Value, key: &str) -> Tensor {
    let cfg = config(case);
    let b = case["x_shape"][if cfg.batch_first { 0 } else { 1 }].as_u64().unwrap() as usize;
    Tensor::from_vec(values(&case[key]), (cfg.num_layers * 2, b, cfg.hidden_size), &Device::Cpu).unwrap()
}

fn param_shape(name: &str, cfg: RecurrentConfig, kind: &str) -> Vec<usize> {
    let gates = if kind.starts_with("lstm") {
        4
    } else if kind.starts_with("gru") {
        3
    } else {
        1
    };
    let gh = gates * cfg.hidden_size;
    let first = name.contains("_l0");
    if name.starts_with("weight_ih") {
        vec![gh, if first { cfg.input_size } else { 2 * cfg.hidden_size }]
    } else if name.starts_with("weight_hh") {
        vec![gh, cfg.hidden_size]
    } else {
        vec![gh]
    }
}

#[test]
fn lstm_bidirectional_two_layer_matches_pytorch() {
    let case = cases(include_str!("fixtures/lstm.json"))["lstm_bi_2layer"].clone();
    check("lstm_bi_2layer", &case, |vb, x, h0, c0| {
        Lstm::new(&config(&case), vb).unwrap().forward_with_state(x, h0, c0).unwrap()
    });
}

#[test]
fn gru_bidirectional_two_layer_matches_pytorch() {
    let case = cases(include_str!("fixtures/rnn.json"))["gru_bi_2layer"].clone();
    check("gru_bi_2layer", &case, |vb, x, h0, _| {
        Gru::new(&config(&case), vb).unwrap().forward_with_state(x, h0).unwrap()
    });
}

#[test]
fn rnn_bidirectional_two_layer_matches_pytorch() {
    let case = cases(include_str!("fixtures/rnn.json"))["rnn_bi_2layer"].clone();
    check("rnn_bi_2layer", &case, |vb, x, h0, _| {
        Rnn::new(&config(&case), RnnNonlinearity::Tanh, vb).unwrap().forward_with_state(x, h0).unwrap()
    });
}

fn recurrent_params(cfg: &RecurrentConfig, gates: usize) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    let dirs = if cfg.bidirectional { 2 } else { 1 };
    for l in 0..cfg.num_layers {
        for d in 0..dirs {
            let sfx = if d == 0 { format!("l{l}") } else { format!("l{l}_reverse") };
            let input = if l == 0 { cfg.input_size } else { dirs * cfg.hidden_size };
            let gh = gates * cfg.hidden_size;
            out.push((format!("weight_ih_{sfx}"), vec![gh, input]));
            out.push((format!("weight_hh_{sfx}"), vec![gh, cfg.hidden_size]));
            out.push((format!("bias_ih_{sfx}"), vec![gh]));
            out.push((format!("bias_hh_{sfx}"), vec![gh]));
        }
    }
    out
}

#[test]
fn recurrent_layers_pass_finite_difference_check() {
    let cfg = RecurrentConfig { num_layers: 2, bidirectional: true, batch_first: true, ..RecurrentConfig::new(2, 3) };
    for (gates, kind) in [(4, "lstm"), (3, "gru"), (1, "rnn")] {
        let params = recurrent_params(&cfg, gates);
        let refs: Vec<(&str, &[usize])> = params.iter().map(|(k, s)| (k.as_str(), s.as_slice())).collect();
        let x = (random(&[2, 3, 2], 1) * 0.5).unwrap();
        let report = gradcheck(x, &refs, |vb, x| {
            let out = match kind {
                "lstm" => Lstm::new(&cfg, vb)?.forward_with_state(x, None, None)?,
                "gru" => Gru::new(&cfg, vb)?.forward_with_state(x, None)?,
                _ => Rnn::new(&cfg, RnnNonlinearity::Relu, vb)?.forward_with_state(x, None)?,
            };
            // Both the outputs and the final states feed the checked scalar.
            out.output.sum_all()? + out.h_n.sqr()?.sum_all()?.affine(0.5, 0.0)?
        });
        println!("{kind}: {report:?}");
    }
}

#[test]
fn lstm_wrong_input_shape_names_layer_and_shapes() {
    let store = ParamStore::new(0, &Device::Cpu);
    let cfg = RecurrentConfig { batch_first: true, ..RecurrentConfig::new(8, 16) };
    let lstm = Lstm::new(&cfg, store.var_builder(DType::F32).pp("encoder.lstm")).unwrap();
    let err = lstm.forward_with_state(&Tensor::zeros((4, 10, 5), DType::F32, &Device::Cpu).unwrap(), None, None);
    let err = err.unwrap_err().to_string();
    assert!(
        err.contains("encoder.lstm")
            && err.contains("(batch, seq, features) with 8 features")
            && err.contains("[4, 10, 5]"),
        "{err}"
    );
    let err = lstm.forward_with_state(&Tensor::zeros((4, 8), DType::F32, &Device::Cpu).unwrap(), None, None);
    assert!(err.unwrap_err().to_string().contains("[4, 8]"));
    let x = Tensor::zeros((4, 10, 8), DType::F32, &Device::Cpu).unwrap();
    let h0 = Tensor::zeros((1, 3, 16), DType::F32, &Device::Cpu).unwrap();
    let err = lstm.forward_with_state(&x, Some(&h0), None).unwrap_err().to_string();
    assert!(
        err.contains("encoder.lstm") && err.contains("h0") && err.contains("[1, 4, 16]") && err.contains("[1, 3, 16]"),
        "{err}"
    );
    assert_eq!(
        store.names()[..4],
        [
            "encoder.lstm.bias_hh_l0",
            "encoder.lstm.bias_ih_l0",
            "encoder.lstm.weight_hh_l0",
            "encoder.lstm.weight_ih_l0"
        ]
    );
}
