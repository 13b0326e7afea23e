//! Gradient clipping, accumulation and the learning-rate finder.

use candle_core::{Device, Tensor, Var};
use ember_optim::schedule::{lr_find, LrFinder};
use ember_optim::{clip_grad_norm, clip_grad_value, GradAccumulator, Optimizer, Sgd, SgdConfig};

#[test]
fn clip_grad_norm_scales_to_the_max_norm_and_reports_the_original() {
    let a = Var::new(&[3f64, 0.], &Device::Cpu).unwrap();
    let b = Var::new(&[0f64, 4.], &Device::Cpu).unwrap();
    // Gradients equal the variables: d/dx (x^2 / 2) = x.
    let loss = ((a.as_tensor().sqr().unwrap().sum_all().unwrap() + b.as_tensor().sqr().unwrap().sum_all().unwrap())
        .unwrap()
        * 0.5)
        .unwrap();
    let mut grads = loss.backward().unwrap();
    let vars = [a.clone(), b.clone()];
    let norm = clip_grad_norm(&mut grads, &vars, 1.0).unwrap();
    assert!((norm - 5.0).abs() < 1e-12);
    let ga = grads.get(&a).unwrap().to_vec1::<f64>().unwrap();
    let gb = grads.get(&b).unwrap().to_vec1::<f64>().unwrap();
    let new_norm = (ga.iter().chain(&gb).map(|v| v * v).sum::<f64>()).sqrt();
    assert!((new_norm - 1.0).abs() < 1e-6, "{new_norm}");
    assert!((ga[0] / gb[1] - 0.75).abs() < 1e-12, "direction kept");
    // Below the limit nothing changes.
    let norm = clip_grad_norm(&mut grads, &vars, 10.0).unwrap();
    assert!((norm - 1.0).abs() < 1e-5);
    assert_eq!(grads.get(&a).unwrap().to_vec1::<f64>().unwrap(), ga);
}

#[test]
fn clip_grad_value_clamps_elementwise() {
    let a = Var::new(&[3f64, -0.5, -7.0], &Device::Cpu).unwrap();
    let mut grads = (a.as_tensor() * &Tensor::new(&[1f64, 1., 1.], &Device::Cpu).unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    grads.insert(&a, Tensor::new(&[3f64, -0.5, -7.0], &Device::Cpu).unwrap());
    clip_grad_value(&mut grads, std::slice::from_ref(&a), 1.0).unwrap();
    assert_eq!(grads.get(&a).unwrap().to_vec1::<f64>().unwrap(), vec![1.0, -0.5, -1.0]);
}

#[test]
fn accumulating_four_micro_batches_equals_one_large_batch() {
    let dev = Device::Cpu;
    let x: Vec<f64> = (0..64).map(|i| (i as f64 * 0.37).sin()).collect();
    let y: Vec<f64> = (0..64).map(|i| (i as f64 * 0.11).cos()).collect();
    let x = Tensor::from_vec(x, 64, &dev).unwrap();
    let y = Tensor::from_vec(y, 64, &dev).unwrap();
    let loss = |w: &Var, lo: usize, n: usize| {
        let pred = x.narrow(0, lo, n).unwrap().broadcast_mul(w.as_tensor()).unwrap();
        (pred - y.narrow(0, lo, n).unwrap()).unwrap().sqr().unwrap().mean_all().unwrap()
    };
    let big = Var::new(&[0.5f64], &dev).unwrap();
    let mut opt = Sgd::new(vec![("w".into(), big.clone())], SgdConfig { lr: 0.1, ..Default::default() }).unwrap();
    opt.step(&loss(&big, 0, 64).backward().unwrap()).unwrap();

    let small = Var::new(&[0.5f64], &dev).unwrap();
    let mut opt = Sgd::new(vec![("w".into(), small.clone())], SgdConfig { lr: 0.1, ..Default::default() }).unwrap();
    let mut acc = GradAccumulator::new(vec![small.clone()], 4);
    for k in 0..4 {
        let ready = acc.add(&loss(&small, k * 16, 16).backward().unwrap()).unwrap();
        assert_eq!(ready.is_some(), k == 3);
        if let Some(g) = ready {
            opt.step(&g).unwrap();
        }
    }
    let (a, b) = (big.to_vec1::<f64>().unwrap()[0], small.to_vec1::<f64>().unwrap()[0]);
    assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    assert_ne!(a, 0.5);
}

#[test]
fn lr_finder_sweeps_exponentially_stops_on_divergence_and_suggests_a_working_rate() {
    // Gradient descent on f(w) = w^2 / 2 from w = 1: converges for lr < 2, diverges above.
    let w = std::cell::Cell::new(1.0f64);
    let finder = LrFinder { start_lr: 1e-4, end_lr: 100.0, steps: 60, ..Default::default() };
    let result = lr_find(&finder, |lr| -> Result<f64, ()> {
        let v = w.get();
        w.set(v - lr * v);
        Ok(w.get() * w.get() / 2.0)
    })
    .unwrap();
    assert!(result.lrs.len() < 60, "should stop once the loss explodes");
    let ratio = result.lrs[1] / result.lrs[0];
    assert!((result.lrs[2] / result.lrs[1] - ratio).abs() < 1e-9, "exponential spacing");
    let s = result.suggestion.unwrap();
    assert!(s > 1e-3 && s < 2.0, "suggested {s}");
}
