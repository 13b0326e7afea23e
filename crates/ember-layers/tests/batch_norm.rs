//! `BatchNorm` on ember's kernels against the same layer on candle's ops
//! (`ember_kernels::candle_batch_norm_{train,eval}`, the arithmetic the layer ran before):
//! outputs, gradients and running statistics over several steps, frozen mode, fused
//! activations, odd sizes and batch 1.

#[path = "../../ember-kernels/tests/common/mod.rs"]
mod kernel_common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::ModuleT;
use ember_kernels::{candle_batch_norm_eval, candle_batch_norm_train, FusedActivation};
use ember_layers::{BatchNorm, BatchNormConfig, ParamStore};
use kernel_common::{candle_activation, max_rel_diff, uniform};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// A layer with random weight, bias and running statistics, and its store's variables.
fn layer(c: usize, eps: f64, momentum: f64, rng: &mut StdRng) -> (BatchNorm, ParamStore) {
    let store = ParamStore::new(0, &Device::Cpu);
    let cfg = BatchNormConfig { eps, momentum, ..BatchNormConfig::new(c) };
    let bn = BatchNorm::new(&cfg, store.var_builder(DType::F32).pp("bn")).unwrap();
    for (name, lo, hi) in
        [("weight", -2.0, 2.0), ("bias", -1.0, 1.0), ("running_mean", -1.0, 1.0), ("running_var", 0.2, 3.0)]
    {
        store.assign(&format!("bn.{name}"), &uniform(&[c], rng, DType::F32, lo, hi)).unwrap();
    }
    (bn, store)
}

/// Asserts that `ours` and `theirs`, weighted by `r` and summed, give each named variable
/// gradients within 1e-5 of each other.
#[track_caller]
fn assert_same_gradients(ours: &Tensor, theirs: &Tensor, r: &Tensor, vars: [(&str, &Tensor); 3], what: &str) {
    let g1 = (ours * r).unwrap().sum_all().unwrap().backward().unwrap();
    let g2 = (theirs * r).unwrap().sum_all().unwrap().backward().unwrap();
    for (name, v) in vars {
        let d = max_rel_diff(g1.get(v).unwrap(), g2.get(v).unwrap());
        assert!(d < 1e-5, "{what}: gradient of {name} differs by {d}");
    }
}

#[test]
fn layer_matches_candle_ops_over_training_steps_and_in_frozen_mode() {
    let mut rng = StdRng::seed_from_u64(21);
    for shape in [vec![1, 3, 7], vec![2, 3, 7, 5], vec![6, 5], vec![1, 4, 3, 3], vec![3, 7, 1, 1]] {
        let c = shape[1];
        let (eps, momentum) = (1e-3, 0.1);
        let (mut bn, store) = layer(c, eps, momentum, &mut rng);
        let w = store.get("bn.weight").unwrap();
        let b = store.get("bn.bias").unwrap();
        let count = shape.iter().product::<usize>() / c;
        // Copies: the layer updates its buffers in place, and `running_mean()` shares their storage.
        let mut running_mean = bn.running_mean().unwrap().copy().unwrap();
        let mut running_var = bn.running_var().unwrap().copy().unwrap();
        for step in 0..3 {
            let x = Var::from_tensor(&uniform(&shape, &mut rng, DType::F32, -2.0, 3.0)).unwrap();
            let r = uniform(&shape, &mut rng, DType::F32, -1.0, 1.0);
            let ours = bn.forward_t(&x, true).unwrap();
            let (theirs, stats) =
                candle_batch_norm_train(&x, Some(&w), Some(&b), eps, FusedActivation::Identity).unwrap();
            let what = format!("{shape:?} step {step}");
            assert!(max_rel_diff(&ours, &theirs) < 1e-5, "{what}: output");
            assert_same_gradients(&ours, &theirs, &r, [("x", &x), ("weight", &w), ("bias", &b)], &what);
            // The running averages as the layer computed them before it had a kernel.
            let unbiased = stats.var.affine(count as f64 / (count - 1) as f64, 0.0).unwrap();
            running_mean = (running_mean.affine(1.0 - momentum, 0.0).unwrap()
                + stats.mean.affine(momentum, 0.0).unwrap())
            .unwrap();
            running_var =
                (running_var.affine(1.0 - momentum, 0.0).unwrap() + unbiased.affine(momentum, 0.0).unwrap()).unwrap();
            assert!(max_rel_diff(&bn.running_mean().unwrap(), &running_mean) < 1e-6, "{what}: running mean");
            assert!(max_rel_diff(&bn.running_var().unwrap(), &running_var) < 1e-6, "{what}: running var");
        }
        // Frozen in train mode, and eval: running statistics, gradients to x, weight, bias.
        let before =
            (bn.running_mean().unwrap().to_vec1::<f32>().unwrap(), bn.running_var().unwrap().to_vec1::<f32>().unwrap());
        for frozen in [true, false] {
            bn.set_frozen(frozen);
            let x = Var::from_tensor(&uniform(&shape, &mut rng, DType::F32, -2.0, 3.0)).unwrap();
            let r = uniform(&shape, &mut rng, DType::F32, -1.0, 1.0);
            // Frozen: train mode on running statistics; otherwise plain eval mode.
            let ours = bn.forward_t(&x, frozen).unwrap();
            let (rm, rv) = (bn.running_mean().unwrap(), bn.running_var().unwrap());
            let theirs =
                candle_batch_norm_eval(&x, &rm, &rv, Some(&w), Some(&b), eps, FusedActivation::Identity).unwrap();
            assert!(max_rel_diff(&ours, &theirs) < 1e-5, "{shape:?} frozen {frozen}: output");
            let what = format!("{shape:?} frozen {frozen}");
            assert_same_gradients(&ours, &theirs, &r, [("x", &x), ("weight", &w), ("bias", &b)], &what);
        }
        let after =
            (bn.running_mean().unwrap().to_vec1::<f32>().unwrap(), bn.running_var().unwrap().to_vec1::<f32>().unwrap());
        assert_eq!(before, after, "{shape:?}: frozen and eval passes left the running statistics alone");
    }
}

#[test]
fn fused_activation_equals_the_layer_then_the_activation() {
    let mut rng = StdRng::seed_from_u64(22);
    for act in [FusedActivation::Relu, FusedActivation::Relu6] {
        for train in [true, false] {
            let (bn, store) = layer(5, 1e-3, 0.01, &mut rng);
            let (twin, twin_store) = layer(5, 1e-3, 0.01, &mut rng);
            for (name, t) in store.state() {
                twin_store.assign(&name, &t).unwrap();
            }
            // Values spread well past 6 after the affine map, so ReLU6 clips on both sides.
            let x = Var::from_tensor(&uniform(&[2, 5, 6, 7], &mut rng, DType::F32, -6.0, 9.0)).unwrap();
            let r = uniform(&[2, 5, 6, 7], &mut rng, DType::F32, -1.0, 1.0);
            let fused = bn.forward_t_with_activation(&x, train, act).unwrap();
            let separate = candle_activation(&twin.forward_t(&x, train).unwrap(), act);
            assert!(max_rel_diff(&fused, &separate) < 1e-6, "{act:?} train {train}: output");
            let g1 = (&fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (&separate * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for name in ["weight", "bias"] {
                let (a, b) =
                    (store.get(&format!("bn.{name}")).unwrap(), twin_store.get(&format!("bn.{name}")).unwrap());
                let d = max_rel_diff(g1.get(&a).unwrap(), g2.get(&b).unwrap());
                assert!(d < 1e-5, "{act:?} train {train}: gradient of {name} differs by {d}");
            }
            let d = max_rel_diff(g1.get(&x).unwrap(), g2.get(&x).unwrap());
            assert!(d < 1e-5, "{act:?} train {train}: input gradient differs by {d}");
            assert_eq!(
                bn.running_mean().unwrap().to_vec1::<f32>().unwrap(),
                twin.running_mean().unwrap().to_vec1::<f32>().unwrap()
            );
        }
    }
}

#[test]
fn batch_of_one_trains_on_positions_and_single_values_are_refused() {
    let mut rng = StdRng::seed_from_u64(23);
    let (bn, _store) = layer(3, 1e-5, 0.1, &mut rng);
    let y = bn.forward_t(&uniform(&[1, 3, 7], &mut rng, DType::F32, -1.0, 1.0), true).unwrap();
    assert_eq!(y.dims(), [1, 3, 7]);
    let err = bn.forward_t(&uniform(&[1, 3], &mut rng, DType::F32, -1.0, 1.0), true).unwrap_err().to_string();
    assert!(err.contains("more than 1 value per channel"), "{err}");
    // In eval mode a single value is fine: the running statistics normalise it.
    assert_eq!(bn.forward_t(&uniform(&[1, 3], &mut rng, DType::F32, -1.0, 1.0), false).unwrap().dims(), [1, 3]);
}
