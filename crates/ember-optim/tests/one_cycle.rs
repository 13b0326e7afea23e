//! One-cycle schedule against PyTorch's `OneCycleLR` (fixture from `fixtures/gen_adam.py`).

use ember_optim::{OneCycle, Schedule};
use serde_json::Value;

#[test]
fn one_cycle_reproduces_pytorch_learning_rates_and_momentum() {
    let f: Value = serde_json::from_str(include_str!("fixtures/one_cycle.json")).unwrap();
    for (name, case) in f.as_object().unwrap() {
        let c = &case["config"];
        let mut s = OneCycle::new(c["max_lr"].as_f64().unwrap(), c["total_steps"].as_u64().unwrap() as usize);
        if let Some(v) = c.get("pct_start") {
            s.pct_start = v.as_f64().unwrap();
        }
        if let Some(v) = c.get("div_factor") {
            s.div_factor = v.as_f64().unwrap();
        }
        if let Some(v) = c.get("final_div_factor") {
            s.final_div_factor = v.as_f64().unwrap();
        }
        let lrs = case["lr"].as_array().unwrap();
        let betas = case["beta1"].as_array().unwrap();
        assert_eq!(lrs.len(), s.total_steps);
        for (step, (lr, beta)) in lrs.iter().zip(betas).enumerate() {
            let (lr, beta) = (lr.as_f64().unwrap(), beta.as_f64().unwrap());
            let ours = s.learning_rate(step);
            assert!((ours - lr).abs() <= 1e-7 * lr.abs().max(1e-12), "{name}: step {step}: lr {ours} vs {lr}");
            let m = s.momentum(step).unwrap();
            assert!((m - beta).abs() <= 1e-12, "{name}: step {step}: momentum {m} vs {beta}");
        }
    }
}

#[test]
fn one_cycle_without_momentum_cycle_leaves_momentum_alone() {
    let s = OneCycle::new(0.01, 10).without_momentum_cycle();
    assert_eq!(s.momentum(3), None);
    assert!((s.learning_rate(0) - 0.01 / 25.0).abs() < 1e-15);
    assert!(s.learning_rate(9) < 1e-6);
}
