//! Run configurations: recipes, their serde layout, validation naming the value at fault, and
//! built optimizers and schedules equal to the ones made by hand.

mod common;

use common::{fixture, problem};
use ember_optim::schedule::{CosineAnnealing, StepDecay};
use ember_optim::{
    Adam, AdamConfig, Error, OneCycle, OptimizerConfig, OptimizerKind, Schedule, ScheduleConfig, Sgd, SgdConfig,
};

#[test]
fn configs_serialise_flat_under_their_names_and_read_back() {
    let sgd = OptimizerConfig::recipe(OptimizerKind::Sgd, 0.05);
    let json = serde_json::to_value(sgd).unwrap();
    assert_eq!(json["optimizer"], "sgd");
    assert_eq!(
        (json["lr"].as_f64(), json["momentum"].as_f64(), json["nesterov"].as_bool()),
        (Some(0.05), Some(0.9), Some(true))
    );
    assert_eq!(serde_json::from_value::<OptimizerConfig>(json).unwrap(), sgd);

    // Settings left out take the rule's defaults, so a short file is enough.
    let adamw: OptimizerConfig = serde_json::from_str(r#"{"optimizer": "adamw", "lr": 0.01}"#).unwrap();
    assert_eq!(adamw.kind(), OptimizerKind::Adamw);
    assert_eq!((adamw.lr(), adamw.weight_decay()), (0.01, 0.0));

    for schedule in [
        ScheduleConfig::OneCycle(Default::default()),
        ScheduleConfig::Cosine(Default::default()),
        ScheduleConfig::Step(Default::default()),
        ScheduleConfig::Constant,
    ] {
        let json = serde_json::to_value(schedule).unwrap();
        assert_eq!(json["scheduler"], schedule.name());
        assert_eq!(serde_json::from_value::<ScheduleConfig>(json).unwrap(), schedule);
    }
    let err = serde_json::from_str::<OptimizerConfig>(r#"{"optimizer": "lion"}"#).unwrap_err();
    assert!(err.to_string().contains("lion"), "{err}");
}

#[test]
fn recipes_set_the_default_learning_rate_by_rule_and_schedule() {
    let one_cycle = ScheduleConfig::OneCycle(Default::default());
    assert_eq!(OptimizerKind::Sgd.default_lr(&one_cycle), 0.05);
    assert_eq!(OptimizerKind::Adam.default_lr(&one_cycle), 0.005);
    assert_eq!(OptimizerKind::Sgd.default_lr(&ScheduleConfig::Constant), 0.01);
    assert_eq!(OptimizerKind::Rmsprop.default_lr(&ScheduleConfig::Constant), 0.001);
    let adamw = OptimizerConfig::recipe(OptimizerKind::Adamw, 1e-3);
    assert_eq!(adamw, OptimizerConfig::AdamW(AdamConfig { lr: 1e-3, ..AdamConfig::adamw() }));
    assert_eq!(adamw.with_weight_decay(0.1).weight_decay(), 0.1);
}

#[test]
fn validation_names_the_setting_and_its_value() {
    let bad = OptimizerConfig::Adam(AdamConfig { beta2: 1.5, ..AdamConfig::default() });
    match bad.validate().unwrap_err() {
        Error::InvalidConfig { optimizer, setting, value, .. } => {
            assert_eq!((optimizer, setting, value), ("adam", "beta2", 1.5))
        }
        other => panic!("{other}"),
    }
    let nesterov = OptimizerConfig::Sgd(SgdConfig { momentum: 0.0, nesterov: true, ..SgdConfig::default() });
    let err = nesterov.validate().unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { setting: "momentum", .. }), "{err}");
    assert_eq!(err.to_string(), "sgd: momentum 0 must be above 0 for Nesterov momentum");

    let step = ScheduleConfig::Step(ember_optim::StepConfig { periods: 0, gamma: 0.5 });
    let err = step.build(0.1, 100).err().unwrap();
    assert_eq!(err.to_string(), "step: periods 0 must be above 0");
    let one_cycle = ScheduleConfig::OneCycle(ember_optim::OneCycleConfig { pct_start: 1.5, ..Default::default() });
    assert!(matches!(one_cycle.validate().unwrap_err(), Error::InvalidConfig { setting: "pct_start", .. }));
}

#[test]
fn built_optimizers_step_exactly_as_ones_made_by_hand() {
    let f = fixture();
    let bits = |p: &common::Problem| p.values().0.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let (a, b) = (problem(&f), problem(&f));
    let config = OptimizerConfig::recipe(OptimizerKind::Sgd, 0.01).with_weight_decay(1e-3);
    let mut built = config.build(a.params()).unwrap();
    let sgd = SgdConfig { lr: 0.01, momentum: 0.9, nesterov: true, weight_decay: 1e-3, ..SgdConfig::default() };
    let mut by_hand = Sgd::new(b.params(), sgd).unwrap();
    for _ in 0..10 {
        a.step(built.as_mut());
        b.step(&mut by_hand);
    }
    assert_eq!(bits(&a), bits(&b));

    // AdamW is Adam with decoupled weight decay, whatever the flag in its settings says.
    let (a, b) = (problem(&f), problem(&f));
    let config = OptimizerConfig::AdamW(AdamConfig { lr: 0.01, weight_decay: 0.1, ..AdamConfig::default() });
    let mut built = config.build(a.params()).unwrap();
    let mut by_hand = Adam::new(b.params(), AdamConfig { lr: 0.01, weight_decay: 0.1, ..AdamConfig::adamw() }).unwrap();
    for _ in 0..10 {
        a.step(built.as_mut());
        b.step(&mut by_hand);
    }
    assert_eq!(bits(&a), bits(&b));
}

#[test]
fn built_schedules_equal_the_schedules_made_by_hand() {
    let rates = |s: &dyn Schedule| (0..120).map(|i| s.learning_rate(i).to_bits()).collect::<Vec<_>>();
    let built = ScheduleConfig::OneCycle(Default::default()).build(0.1, 120).unwrap().unwrap();
    assert_eq!(rates(built.as_ref()), rates(&OneCycle::new(0.1, 120)));
    assert_eq!(built.momentum(7), OneCycle::new(0.1, 120).momentum(7));
    let built = ScheduleConfig::Cosine(Default::default()).build(0.1, 120).unwrap().unwrap();
    assert_eq!(rates(built.as_ref()), rates(&CosineAnnealing { base_lr: 0.1, t_max: 120, eta_min: 0.0 }));
    // Step halves the rate at each third of the run.
    let built = ScheduleConfig::Step(Default::default()).build(0.1, 120).unwrap().unwrap();
    assert_eq!(rates(built.as_ref()), rates(&StepDecay { base_lr: 0.1, step_size: 40, gamma: 0.5 }));
    assert!(ScheduleConfig::Constant.build(0.1, 120).unwrap().is_none());
    assert!(!ScheduleConfig::Constant.depends_on_length());
}
