//! Shared helpers: the fixture's least-squares problem.
#![allow(dead_code)]

use candle_core::{Device, Tensor, Var};
use ember_optim::{
    AdagradConfig, AdamConfig, GroupOptions, Optimizer, ParamGroup, RmsPropConfig, SgdConfig, UpdatePath,
};
use serde_json::Value;

pub fn fixture() -> Value {
    serde_json::from_str(include_str!("../fixtures/optimizers.json")).unwrap()
}

pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

pub struct Problem {
    pub x: Tensor,
    pub y: Tensor,
    pub w: Var,
    pub b: Var,
}

pub fn problem(f: &Value) -> Problem {
    let dev = Device::Cpu;
    Problem {
        x: Tensor::from_vec(floats(&f["x"]), (8, 5), &dev).unwrap(),
        y: Tensor::from_vec(floats(&f["y"]), (8, 3), &dev).unwrap(),
        w: Var::from_vec(floats(&f["w0"]), (5, 3), &dev).unwrap(),
        b: Var::from_vec(floats(&f["b0"]), 3, &dev).unwrap(),
    }
}

impl Problem {
    pub fn step(&self, opt: &mut dyn Optimizer) {
        let pred = self.x.matmul(self.w.as_tensor()).unwrap().broadcast_add(self.b.as_tensor()).unwrap();
        let loss = (pred - &self.y).unwrap().sqr().unwrap().mean_all().unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
    }

    pub fn params(&self) -> Vec<(String, Var)> {
        vec![("w".into(), self.w.clone()), ("b".into(), self.b.clone())]
    }

    /// Groups as the fixture's `groups` config describes (`{"b": {...}}`: b in its own group).
    pub fn groups(&self, cfg: &Value) -> Vec<ParamGroup> {
        let mut groups = vec![ParamGroup {
            name: "w".into(),
            params: vec![("w".into(), self.w.clone())],
            options: GroupOptions::default(),
        }];
        let mut b = ParamGroup {
            name: "b".into(),
            params: vec![("b".into(), self.b.clone())],
            options: GroupOptions::default(),
        };
        if let Some(o) = cfg.get("groups").and_then(|g| g.get("b")) {
            b.options.lr = o.get("lr").and_then(Value::as_f64);
            b.options.weight_decay = o.get("weight_decay").and_then(Value::as_f64);
            b.options.momentum = o.get("momentum").and_then(Value::as_f64);
        }
        groups.push(b);
        groups
    }

    pub fn values(&self) -> (Vec<f64>, Vec<f64>) {
        (self.w.flatten_all().unwrap().to_vec1::<f64>().unwrap(), self.b.to_vec1::<f64>().unwrap())
    }
}

fn get(cfg: &Value, key: &str) -> Option<f64> {
    cfg.get(key).and_then(Value::as_f64)
}

fn flag(cfg: &Value, key: &str) -> bool {
    cfg.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Builds the optimizer a fixture case names, over `p`'s parameters.
pub fn build(kind: &str, cfg: &Value, p: &Problem) -> Box<dyn Optimizer> {
    build_on(kind, cfg, p, UpdatePath::Auto)
}

/// [`build`], updating along `path`.
pub fn build_on(kind: &str, cfg: &Value, p: &Problem, path: UpdatePath) -> Box<dyn Optimizer> {
    let groups = p.groups(cfg);
    match kind {
        "sgd" => {
            let d = SgdConfig::default();
            let c = SgdConfig {
                lr: get(cfg, "lr").unwrap_or(d.lr),
                momentum: get(cfg, "momentum").unwrap_or(d.momentum),
                dampening: get(cfg, "dampening").unwrap_or(d.dampening),
                weight_decay: get(cfg, "weight_decay").unwrap_or(d.weight_decay),
                nesterov: flag(cfg, "nesterov"),
            };
            Box::new(ember_optim::Sgd::with_update_path(groups, c, path).unwrap())
        }
        "adam" => {
            let d = AdamConfig::default();
            let c = AdamConfig {
                lr: get(cfg, "lr").unwrap_or(d.lr),
                beta1: get(cfg, "beta1").unwrap_or(d.beta1),
                beta2: get(cfg, "beta2").unwrap_or(d.beta2),
                eps: get(cfg, "eps").unwrap_or(d.eps),
                weight_decay: get(cfg, "weight_decay").unwrap_or(d.weight_decay),
                amsgrad: flag(cfg, "amsgrad"),
                decoupled_weight_decay: flag(cfg, "decoupled_weight_decay"),
            };
            Box::new(ember_optim::Adam::with_update_path(groups, c, path).unwrap())
        }
        "rmsprop" => {
            let d = RmsPropConfig::default();
            let c = RmsPropConfig {
                lr: get(cfg, "lr").unwrap_or(d.lr),
                alpha: get(cfg, "alpha").unwrap_or(d.alpha),
                eps: get(cfg, "eps").unwrap_or(d.eps),
                weight_decay: get(cfg, "weight_decay").unwrap_or(d.weight_decay),
                momentum: get(cfg, "momentum").unwrap_or(d.momentum),
                centered: flag(cfg, "centered"),
            };
            Box::new(ember_optim::RmsProp::with_update_path(groups, c, path).unwrap())
        }
        "adagrad" => {
            let d = AdagradConfig::default();
            let c = AdagradConfig {
                lr: get(cfg, "lr").unwrap_or(d.lr),
                lr_decay: get(cfg, "lr_decay").unwrap_or(d.lr_decay),
                weight_decay: get(cfg, "weight_decay").unwrap_or(d.weight_decay),
                initial_accumulator_value: get(cfg, "initial_accumulator_value").unwrap_or(d.initial_accumulator_value),
                eps: get(cfg, "eps").unwrap_or(d.eps),
            };
            Box::new(ember_optim::Adagrad::with_update_path(groups, c, path).unwrap())
        }
        other => panic!("unknown optimizer {other}"),
    }
}
