//! Saving, restoring and freezing: exact resumption, typed errors, untouched frozen groups.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::{build, fixture, problem};
use ember_optim::{Adam, AdamConfig, Error, GroupOptions, Optimizer, OptimizerState, ParamGroups, Sgd, SgdConfig};

fn bits(v: &Var) -> Vec<u64> {
    v.flatten_all().unwrap().to_vec1::<f64>().unwrap().iter().map(|x| x.to_bits()).collect()
}

#[test]
fn every_optimizer_resumes_bit_identically_from_a_saved_state() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    for (name, case) in f["cases"].as_object().unwrap() {
        let kind = case["optimizer"].as_str().unwrap();
        let cfg = &case["config"];

        let straight = problem(&f);
        let mut opt = build(kind, cfg, &straight);
        for _ in 0..100 {
            straight.step(opt.as_mut());
        }

        let first = problem(&f);
        let mut opt = build(kind, cfg, &first);
        for _ in 0..50 {
            first.step(opt.as_mut());
        }
        let path = dir.path().join(format!("{name}.safetensors"));
        opt.state().unwrap().save(&path).unwrap();
        drop(opt);

        // A fresh process: new variables holding the step-50 values, a new optimizer, the state.
        let resumed = problem(&f);
        resumed.w.set(first.w.as_tensor()).unwrap();
        resumed.b.set(first.b.as_tensor()).unwrap();
        let mut opt = build(kind, cfg, &resumed);
        let state = OptimizerState::load(&path, &Device::Cpu).unwrap();
        assert_eq!(state.step, 50, "{name}");
        opt.load_state(state).unwrap();
        for _ in 0..50 {
            resumed.step(opt.as_mut());
        }
        assert_eq!(bits(&resumed.w), bits(&straight.w), "{name}: w differs after resuming");
        assert_eq!(bits(&resumed.b), bits(&straight.b), "{name}: b differs after resuming");
    }
}

#[test]
fn load_state_names_the_parameter_at_fault_and_changes_nothing() {
    let f = fixture();
    let p = problem(&f);
    let mut opt = Adam::new(p.params(), AdamConfig::default()).unwrap();
    p.step(&mut opt);
    let good = opt.state().unwrap();

    let mut missing = good.clone();
    missing.buffers.remove("b.exp_avg_sq");
    match opt.load_state(missing).unwrap_err() {
        Error::MissingBuffer { param, buffer } => assert_eq!((param.as_str(), buffer.as_str()), ("b", "b.exp_avg_sq")),
        other => panic!("{other}"),
    }

    let mut wrong_shape = good.clone();
    wrong_shape.buffers.insert("w.exp_avg".into(), Tensor::zeros((3, 5), DType::F64, &Device::Cpu).unwrap());
    match opt.load_state(wrong_shape).unwrap_err() {
        Error::BufferShape { param, expected, found, .. } => {
            assert_eq!(param, "w");
            assert_eq!((expected, found), (vec![5, 3], vec![3, 5]));
        }
        other => panic!("{other}"),
    }

    let mut unknown = good.clone();
    unknown.buffers.insert("fc9.weight.exp_avg".into(), Tensor::zeros(1, DType::F64, &Device::Cpu).unwrap());
    let err = opt.load_state(unknown).unwrap_err();
    assert!(matches!(&err, Error::UnknownBuffer { buffer } if buffer == "fc9.weight.exp_avg"), "{err}");

    // Another optimizer's state is refused as such.
    let mut sgd = Sgd::new(p.params(), SgdConfig { momentum: 0.9, ..Default::default() }).unwrap();
    assert!(matches!(sgd.load_state(good.clone()).unwrap_err(), Error::StateMismatch { .. }));

    // Failed loads changed nothing: the good state still loads and matches.
    let before = opt.state().unwrap();
    opt.load_state(good).unwrap();
    assert_eq!(opt.state().unwrap().step, before.step);
}

#[test]
fn frozen_group_is_unchanged_and_holds_no_state() {
    let f = fixture();
    let p = problem(&f);
    let groups = ParamGroups::new().rule("b", GroupOptions::frozen()).split(p.params());
    let mut opt = Adam::with_groups(groups, AdamConfig { lr: 0.01, ..Default::default() }).unwrap();
    assert_eq!(opt.trainable(), vec!["w"]);
    let (w0, b0) = (bits(&p.w), bits(&p.b));
    for _ in 0..20 {
        p.step(&mut opt);
    }
    assert_eq!(bits(&p.b), b0, "frozen parameter moved");
    assert_ne!(bits(&p.w), w0, "trainable parameter did not move");
    let state = opt.state().unwrap();
    assert!(state.buffers.keys().all(|k| !k.starts_with("b.")), "{:?}", state.buffers.keys().collect::<Vec<_>>());
}

#[test]
fn schedules_scale_group_learning_rates_proportionally() {
    let f = fixture();
    let p = problem(&f);
    let groups = ParamGroups::new().rule("b", GroupOptions::default().lr(0.001)).split(p.params());
    let mut fast = Sgd::with_groups(groups, SgdConfig { lr: 0.01, ..Default::default() }).unwrap();
    fast.set_learning_rate(0.0);
    let (w0, b0) = (bits(&p.w), bits(&p.b));
    p.step(&mut fast);
    assert_eq!((bits(&p.w), bits(&p.b)), (w0, b0), "lr 0 must freeze every group");
}

#[test]
fn unsupported_parameters_and_bad_configs_are_typed_errors() {
    let v = Var::new(&[1u32, 2], &Device::Cpu).unwrap();
    let err = Adam::new(vec![("ids".into(), v)], AdamConfig::default()).unwrap_err();
    assert!(matches!(&err, Error::UnsupportedParameter { name, .. } if name == "ids"), "{err}");
    let w = Var::new(&[1f32], &Device::Cpu).unwrap();
    let err = Adam::new(vec![("w".into(), w.clone()), ("w".into(), w.clone())], AdamConfig::default()).unwrap_err();
    assert!(matches!(err, Error::DuplicateParameter { .. }));
    let err = Sgd::new(vec![("w".into(), w)], SgdConfig { nesterov: true, ..Default::default() }).unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err}");
}
