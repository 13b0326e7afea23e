//! Schedules against PyTorch's `lr_scheduler` sequences (fixture: `fixtures/gen_optim.py`).

use ember_optim::schedule::{
    CosineAnnealing, CosineWarmRestarts, Exponential, LinearWarmup, MultiStep, PlateauMode, ReduceOnPlateau, StepDecay,
};
use ember_optim::{OneCycle, Schedule};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/schedules.json")).unwrap()
}

fn f(c: &Value, k: &str) -> f64 {
    c[k].as_f64().unwrap()
}

fn u(c: &Value, k: &str) -> usize {
    c[k].as_u64().unwrap() as usize
}

fn assert_sequence(name: &str, s: &dyn Schedule, case: &Value) {
    let lrs = case["lr"].as_array().unwrap();
    let scale = lrs.iter().map(|v| v.as_f64().unwrap()).fold(0.0, f64::max);
    for (step, lr) in lrs.iter().enumerate() {
        let (ours, theirs) = (s.learning_rate(step), lr.as_f64().unwrap());
        assert!((ours - theirs).abs() <= 1e-7 * scale, "{name}: step {step}: {ours} vs {theirs}");
    }
    if let Some(betas) = case.get("beta1") {
        for (step, b) in betas.as_array().unwrap().iter().enumerate() {
            let ours = s.momentum(step).unwrap_or(0.9);
            assert!((ours - b.as_f64().unwrap()).abs() <= 1e-12, "{name}: step {step}: momentum {ours} vs {b}");
        }
    }
}

#[test]
fn step_multistep_and_exponential_match_pytorch() {
    let fx = fixture();
    let c = &fx["step"]["config"];
    assert_sequence(
        "step",
        &StepDecay { base_lr: f(c, "base_lr"), step_size: u(c, "step_size"), gamma: f(c, "gamma") },
        &fx["step"],
    );
    let c = &fx["multi_step"]["config"];
    let milestones = c["milestones"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_sequence(
        "multi_step",
        &MultiStep { base_lr: f(c, "base_lr"), milestones, gamma: f(c, "gamma") },
        &fx["multi_step"],
    );
    let c = &fx["exponential"]["config"];
    assert_sequence("exponential", &Exponential { base_lr: f(c, "base_lr"), gamma: f(c, "gamma") }, &fx["exponential"]);
}

#[test]
fn cosine_annealing_and_warm_restarts_match_pytorch() {
    let fx = fixture();
    let c = &fx["cosine"]["config"];
    assert_sequence(
        "cosine",
        &CosineAnnealing { base_lr: f(c, "base_lr"), t_max: u(c, "t_max"), eta_min: f(c, "eta_min") },
        &fx["cosine"],
    );
    for name in ["cosine_warm_restarts", "cosine_warm_restarts_equal"] {
        let c = &fx[name]["config"];
        let s = CosineWarmRestarts {
            base_lr: f(c, "base_lr"),
            t_0: u(c, "t_0"),
            t_mult: u(c, "t_mult"),
            eta_min: f(c, "eta_min"),
        };
        assert_sequence(name, &s, &fx[name]);
    }
}

#[test]
fn linear_warmup_composed_with_cosine_matches_pytorch_sequential_lr() {
    let fx = fixture();
    let c = &fx["warmup_cosine"]["config"];
    let s = LinearWarmup {
        warmup_steps: u(c, "warmup_steps"),
        start_factor: f(c, "start_factor"),
        after: CosineAnnealing { base_lr: f(c, "base_lr"), t_max: u(c, "t_max"), eta_min: f(c, "eta_min") },
    };
    assert_sequence("warmup_cosine", &s, &fx["warmup_cosine"]);
}

#[test]
fn one_cycle_matches_pytorch_learning_rates_and_momentum() {
    let fx = fixture();
    for name in ["one_cycle_default", "one_cycle_custom"] {
        let c = &fx[name]["config"];
        let mut s = OneCycle::new(f(c, "max_lr"), u(c, "total_steps"));
        if let Some(v) = c.get("pct_start") {
            s.pct_start = v.as_f64().unwrap();
            s.div_factor = f(c, "div_factor");
            s.final_div_factor = f(c, "final_div_factor");
        }
        assert_sequence(name, &s, &fx[name]);
    }
}

#[test]
fn reduce_on_plateau_matches_pytorch_and_resumes_from_json() {
    let fx = fixture();
    for name in ["plateau_min", "plateau_max"] {
        let case = &fx[name];
        let c = &case["config"];
        let mode = if c["mode"] == "min" { PlateauMode::Min } else { PlateauMode::Max };
        let mut s = ReduceOnPlateau::new(f(c, "base_lr"), mode);
        s.factor = f(c, "factor");
        s.patience = u(c, "patience");
        if let Some(v) = c.get("cooldown") {
            s.cooldown = v.as_u64().unwrap() as usize;
        }
        if let Some(v) = c.get("min_lr") {
            s.min_lr = v.as_f64().unwrap();
        }
        let metrics: Vec<f64> = case["metrics"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let expected: Vec<f64> = case["lr"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        for (i, (&m, &lr)) in metrics.iter().zip(&expected).enumerate() {
            if i == metrics.len() / 2 {
                // Save and restore mid-way: the restored scheduler continues identically.
                let json = serde_json::to_string(&s).unwrap();
                s = serde_json::from_str(&json).unwrap();
            }
            let ours = s.observe(m);
            assert!((ours - lr).abs() <= 1e-12, "{name}: observation {i}: {ours} vs {lr}");
        }
        assert!(expected.first() != expected.last(), "{name}: the fixture should contain a reduction");
    }
}

#[test]
fn schedules_round_trip_through_json() {
    let s = LinearWarmup {
        warmup_steps: 5,
        start_factor: 0.1,
        after: CosineWarmRestarts { base_lr: 0.1, t_0: 5, t_mult: 2, eta_min: 0.0 },
    };
    let back: LinearWarmup<CosineWarmRestarts> = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
    let o = OneCycle::new(0.01, 1000);
    assert_eq!(serde_json::from_str::<OneCycle>(&serde_json::to_string(&o).unwrap()).unwrap(), o);
    let m = MultiStep { base_lr: 0.1, milestones: vec![3, 9], gamma: 0.5 };
    assert_eq!(serde_json::from_str::<MultiStep>(&serde_json::to_string(&m).unwrap()).unwrap(), m);
}
