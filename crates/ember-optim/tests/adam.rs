//! Adam against PyTorch's `torch.optim.Adam` (fixtures from `fixtures/gen_adam.py`), and exact
//! resumption from saved state.

use candle_core::{DType, Device, Tensor, Var};
use ember_optim::{Adam, AdamConfig, Optimizer};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/adam.json")).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

struct Problem {
    x: Tensor,
    y: Tensor,
    w: Var,
    b: Var,
}

fn problem(f: &Value) -> Problem {
    let dev = Device::Cpu;
    Problem {
        x: Tensor::from_vec(floats(&f["x"]), (8, 5), &dev).unwrap(),
        y: Tensor::from_vec(floats(&f["y"]), (8, 3), &dev).unwrap(),
        w: Var::from_vec(floats(&f["w0"]), (5, 3), &dev).unwrap(),
        b: Var::from_vec(floats(&f["b0"]), 3, &dev).unwrap(),
    }
}

impl Problem {
    fn step(&self, opt: &mut Adam) {
        let pred = self.x.matmul(self.w.as_tensor()).unwrap().broadcast_add(self.b.as_tensor()).unwrap();
        let loss = (pred - &self.y).unwrap().sqr().unwrap().mean_all().unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
    }

    fn params(&self) -> Vec<(String, Var)> {
        vec![("w".into(), self.w.clone()), ("b".into(), self.b.clone())]
    }
}

fn config(c: &Value) -> AdamConfig {
    let betas = floats(&c["betas"]);
    AdamConfig {
        lr: c["lr"].as_f64().unwrap(),
        beta1: betas[0],
        beta2: betas[1],
        eps: c["eps"].as_f64().unwrap(),
        weight_decay: c["weight_decay"].as_f64().unwrap(),
    }
}

fn max_rel_error(ours: &[f64], reference: &[f64]) -> f64 {
    ours.iter().zip(reference).map(|(a, b)| (a - b).abs() / b.abs().max(1e-6)).fold(0.0, f64::max)
}

#[test]
fn adam_matches_pytorch_trajectory_for_every_configuration() {
    let f = fixture();
    for (name, case) in f["cases"].as_object().unwrap() {
        let p = problem(&f);
        let mut opt = Adam::new(p.params(), config(&case["config"])).unwrap();
        let mut step = 0;
        for record in case["trajectory"].as_array().unwrap() {
            let target = record["step"].as_u64().unwrap();
            while step < target {
                p.step(&mut opt);
                step += 1;
            }
            let w = p.w.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let b = p.b.to_vec1::<f64>().unwrap();
            let err = max_rel_error(&w, &floats(&record["w"])).max(max_rel_error(&b, &floats(&record["b"])));
            assert!(err < 1e-9, "{name}: step {step}: max relative error {err}");
        }
        assert_eq!(step, 100, "{name}");
    }
}

#[test]
fn adam_resume_matches_uninterrupted_run() {
    let f = fixture();
    let cfg = config(&f["cases"]["weight_decay_0.1"]["config"]);

    let straight = problem(&f);
    let mut opt = Adam::new(straight.params(), cfg).unwrap();
    for _ in 0..100 {
        straight.step(&mut opt);
    }

    let first = problem(&f);
    let mut opt = Adam::new(first.params(), cfg).unwrap();
    for _ in 0..50 {
        first.step(&mut opt);
    }
    let state = opt.state();
    assert_eq!(state.step, 50);
    // A fresh process: new variables holding the step-50 values, a new optimizer, the state.
    let resumed = problem(&f);
    resumed.w.set(first.w.as_tensor()).unwrap();
    resumed.b.set(first.b.as_tensor()).unwrap();
    let mut opt = Adam::new(resumed.params(), cfg).unwrap();
    opt.load_state(state).unwrap();
    for _ in 0..50 {
        resumed.step(&mut opt);
    }
    let bits =
        |v: &Var| v.flatten_all().unwrap().to_vec1::<f64>().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&resumed.w), bits(&straight.w));
    assert_eq!(bits(&resumed.b), bits(&straight.b));
}

#[test]
fn adam_load_state_names_the_parameter_at_fault() {
    let f = fixture();
    let p = problem(&f);
    let mut opt = Adam::new(p.params(), AdamConfig::default()).unwrap();
    p.step(&mut opt);
    let good = opt.state();

    let mut missing = good.clone();
    missing.buffers.remove("b.exp_avg_sq");
    let err = opt.load_state(missing).unwrap_err().to_string();
    assert!(err.contains("b.exp_avg_sq") && err.contains("missing"), "{err}");

    let mut wrong_shape = good.clone();
    wrong_shape.buffers.insert("w.exp_avg".into(), Tensor::zeros((3, 5), DType::F64, &Device::Cpu).unwrap());
    let err = opt.load_state(wrong_shape).unwrap_err().to_string();
    assert!(err.contains("w.exp_avg") && err.contains("[3, 5]"), "{err}");

    let mut unknown = good.clone();
    unknown.buffers.insert("fc9.weight.exp_avg".into(), Tensor::zeros(1, DType::F64, &Device::Cpu).unwrap());
    let err = opt.load_state(unknown).unwrap_err().to_string();
    assert!(err.contains("fc9.weight.exp_avg"), "{err}");

    // A failed load changes nothing: the good state still loads and matches.
    opt.load_state(good.clone()).unwrap();
    assert_eq!(opt.state().step, 1);
}

#[test]
fn adam_skips_parameters_without_gradient() {
    let dev = Device::Cpu;
    let used = Var::new(&[1.0f64, 2.0], &dev).unwrap();
    let unused = Var::new(&[5.0f64], &dev).unwrap();
    let mut opt =
        Adam::new(vec![("used".into(), used.clone()), ("unused".into(), unused.clone())], AdamConfig::default())
            .unwrap();
    let loss = used.as_tensor().sum_all().unwrap();
    opt.step(&loss.backward().unwrap()).unwrap();
    assert_eq!(unused.to_vec1::<f64>().unwrap(), vec![5.0]);
    // First Adam step moves each coordinate by lr against the gradient's sign.
    let u = used.to_vec1::<f64>().unwrap();
    assert!((u[0] - (1.0 - 1e-3)).abs() < 1e-9 && (u[1] - (2.0 - 1e-3)).abs() < 1e-9, "{u:?}");
}
