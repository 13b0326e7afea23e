//! Every optimizer and option against PyTorch's trajectory (fixtures: `fixtures/gen_optim.py`).

mod common;

use common::{build, fixture, floats, problem};

fn max_rel_error(ours: &[f64], reference: &[f64]) -> f64 {
    ours.iter().zip(reference).map(|(a, b)| (a - b).abs() / b.abs().max(1e-6)).fold(0.0, f64::max)
}

#[test]
fn every_optimizer_matches_pytorch_for_100_steps() {
    let f = fixture();
    let cases = f["cases"].as_object().unwrap();
    assert!(cases.len() >= 17);
    let mut worst = 0.0f64;
    for (name, case) in cases {
        let p = problem(&f);
        let mut opt = build(case["optimizer"].as_str().unwrap(), &case["config"], &p);
        let mut step = 0;
        for record in case["trajectory"].as_array().unwrap() {
            let target = record["step"].as_u64().unwrap();
            while step < target {
                p.step(opt.as_mut());
                step += 1;
            }
            let (w, b) = p.values();
            let err = max_rel_error(&w, &floats(&record["w"])).max(max_rel_error(&b, &floats(&record["b"])));
            worst = worst.max(err);
            assert!(err < 1e-9, "{name}: step {step}: max relative error {err}");
        }
        assert_eq!(step, 100, "{name}");
    }
    eprintln!("worst relative error over all optimizers and steps: {worst:e}");
}

#[test]
fn f32_parameters_follow_the_f64_trajectory_closely() {
    // The fused kernel also runs in f32; after 100 Adam steps it stays near the f64 reference.
    let f = fixture();
    let case = &f["cases"]["adam_default_lr"];
    let dev = candle_core::Device::Cpu;
    let x = candle_core::Tensor::from_vec(floats(&f["x"]), (8, 5), &dev)
        .unwrap()
        .to_dtype(candle_core::DType::F32)
        .unwrap();
    let y = candle_core::Tensor::from_vec(floats(&f["y"]), (8, 3), &dev)
        .unwrap()
        .to_dtype(candle_core::DType::F32)
        .unwrap();
    let w = candle_core::Var::from_vec(floats(&f["w0"]).iter().map(|&v| v as f32).collect::<Vec<_>>(), (5, 3), &dev)
        .unwrap();
    let b =
        candle_core::Var::from_vec(floats(&f["b0"]).iter().map(|&v| v as f32).collect::<Vec<_>>(), 3, &dev).unwrap();
    let cfg = ember_optim::AdamConfig { lr: 0.01, ..Default::default() };
    let mut opt = ember_optim::Adam::new(vec![("w".into(), w.clone()), ("b".into(), b.clone())], cfg).unwrap();
    for _ in 0..100 {
        let loss = (x.matmul(w.as_tensor()).unwrap().broadcast_add(b.as_tensor()).unwrap() - &y)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap();
        ember_optim::Optimizer::step(&mut opt, &loss.backward().unwrap()).unwrap();
    }
    let last = case["trajectory"].as_array().unwrap().last().unwrap();
    let ours: Vec<f64> = w.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|&v| v as f64).collect();
    let err = max_rel_error(&ours, &floats(&last["w"]));
    assert!(err < 1e-4, "f32 drift {err}");
}
