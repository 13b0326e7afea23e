//! Batch, layer and group norm, dropout and embeddings: PyTorch parity (`fixtures/gen_norm.py`),
//! running statistics, finite differences.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::{Module, ModuleT};
use common::{assert_close, cases, gradcheck, parity, random, tensor, values};
use ember_kernels::FusedActivation;
use ember_layers::{
    BatchNorm, BatchNormConfig, Dropout, Dropout2d, DropoutConfig, Embedding, GroupNorm, GroupNormConfig, LayerNorm,
    LayerNormConfig, MaxPool2d, ParamStore,
};
use serde_json::Value;

fn case(name: &str) -> Value {
    cases(include_str!("fixtures/norm.json"))[name].clone()
}

const WB: &[&str] = &["weight", "bias"];

#[test]
fn batch_norm2d_train_mode_matches_pytorch() {
    // Without running statistics: a from_tensors builder holds only the weight and bias.
    let cfg = BatchNormConfig { track_running_stats: false, ..BatchNormConfig::new(3) };
    parity("batch_norm2d_train", &case("batch_norm2d_train"), WB, |vb, x| BatchNorm::new(&cfg, vb)?.forward_t(x, true));
}

#[test]
fn batch_norm1d_train_mode_matches_pytorch() {
    let cfg = BatchNormConfig { track_running_stats: false, ..BatchNormConfig::new(4) };
    parity("batch_norm1d_train", &case("batch_norm1d_train"), WB, |vb, x| BatchNorm::new(&cfg, vb)?.forward_t(x, true));
}

#[test]
fn batch_norm_running_stats_match_pytorch_after_ten_steps_and_eval_uses_them() {
    let c = case("batch_norm2d_running");
    let store = ParamStore::new(0, &Device::Cpu);
    let vb = store.var_builder(DType::F32).pp("bn1");
    BatchNorm::new(&BatchNormConfig::new(3), vb.clone()).unwrap();
    let vec3 = |k: &str| Tensor::from_vec(values(&c[k]), 3, &Device::Cpu).unwrap();
    store.assign("bn1.weight", &vec3("weight")).unwrap();
    store.assign("bn1.bias", &vec3("bias")).unwrap();
    let bn = BatchNorm::new(&BatchNormConfig::new(3), vb).unwrap();
    assert_eq!(store.names(), vec!["bn1.bias", "bn1.weight"], "buffers are not trainable");
    assert_eq!(store.buffer_names(), vec!["bn1.running_mean", "bn1.running_var"]);
    let batches = Tensor::from_vec(values(&c["batches"]), (10, 4, 3, 3, 3), &Device::Cpu).unwrap();
    for i in 0..10 {
        bn.forward_t(&batches.get(i).unwrap(), true).unwrap();
    }
    let x_eval = tensor(&c, "x_eval");
    let y_eval = bn.forward_t(&x_eval, false).unwrap();
    let state: std::collections::HashMap<_, _> = store.state().into_iter().collect();
    assert_close(
        "batch_norm2d_running",
        vec![
            ("running_mean".into(), state["bn1.running_mean"].clone(), values(&c["running_mean"])),
            ("running_var".into(), state["bn1.running_var"].clone(), values(&c["running_var"])),
            ("y_eval".into(), y_eval.clone(), values(&c["y_eval"])),
        ],
    );
    // Eval leaves the statistics alone; a frozen layer uses them even in train mode.
    let before = bn.running_mean().unwrap().to_vec1::<f32>().unwrap();
    let mut frozen = bn.clone();
    frozen.set_frozen(true);
    let y_frozen = frozen.forward_t(&x_eval, true).unwrap();
    assert_eq!(bn.running_mean().unwrap().to_vec1::<f32>().unwrap(), before);
    let diff = (y_frozen - &y_eval).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(diff, 0.0);
    // Unfrozen train mode uses batch statistics, which differ.
    let y_train = bn.forward_t(&x_eval, true).unwrap();
    assert!((y_train - y_eval).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() > 1e-3);
    assert_ne!(bn.running_mean().unwrap().to_vec1::<f32>().unwrap(), before);
}

/// `t` in f32.
fn f32(t: Tensor) -> Tensor {
    t.to_dtype(DType::F32).unwrap()
}

/// A 4-channel f32 batch norm named `bn` whose weight and bias are drawn with the given seeds.
fn seeded_batch_norm(weight_seed: u64, bias_seed: u64) -> BatchNorm {
    let store = ParamStore::new(0, &Device::Cpu);
    let bn = BatchNorm::new(&BatchNormConfig::new(4), store.var_builder(DType::F32).pp("bn")).unwrap();
    store.assign("bn.weight", &f32(random(&[4], weight_seed))).unwrap();
    store.assign("bn.bias", &f32(random(&[4], bias_seed))).unwrap();
    bn
}

/// The largest absolute difference of two f32 tensors.
fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    a.sub(b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn batch_norm_with_pool_equals_batch_norm_then_pool_and_updates_the_same_statistics() {
    // Two layers with the same parameters: one runs the fused op, one the batch norm and the pool
    // in turn; train mode (batch statistics, running averages updated), then eval mode.
    let x = f32((random(&[3, 4, 9, 8], 5) * 2.0).unwrap());
    let pool = MaxPool2d::new(3, 2, 1);
    let (fused, separate) = (seeded_batch_norm(6, 7), seeded_batch_norm(6, 7));
    for train in [true, true, false] {
        let a = fused.forward_t_with_activation_and_pool(&x, train, FusedActivation::Relu, &pool).unwrap();
        let b = separate.forward_t_with_activation(&x, train, FusedActivation::Relu).unwrap().apply(&pool).unwrap();
        assert_eq!(a.dims(), [3, 4, 5, 4]);
        assert!(max_diff(&a, &b) < 1e-6, "train {train}: outputs differ by {}", max_diff(&a, &b));
        let (ma, mb) = (fused.running_mean().unwrap(), separate.running_mean().unwrap());
        assert!(max_diff(&ma, &mb) < 1e-7, "train {train}: running means differ");
    }
    assert!(fused.running_mean().unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() > 1e-3);
    let flat = x.flatten_from(2).unwrap();
    let err = fused.forward_t_with_activation_and_pool(&flat, true, FusedActivation::Relu, &pool).unwrap_err();
    assert!(err.to_string().contains("`bn` with max pool"), "{err}");
}

#[test]
fn batch_norm_with_residual_equals_batch_norm_then_add_activate() {
    let (x, shortcut) = (f32((random(&[3, 4, 5, 6], 8) * 2.0).unwrap()), f32(random(&[3, 4, 5, 6], 9)));
    let (fused, separate) = (seeded_batch_norm(10, 11), seeded_batch_norm(10, 11));
    for train in [true, true, false] {
        let a = fused.forward_t_with_residual(&x, &shortcut, train, FusedActivation::Relu).unwrap();
        let b = separate.forward_t(&x, train).unwrap();
        let b = ember_kernels::add_activate(&b, &shortcut, FusedActivation::Relu).unwrap();
        assert!(max_diff(&a, &b) < 1e-6, "train {train}: outputs differ by {}", max_diff(&a, &b));
        let (va, vb) = (fused.running_var().unwrap(), separate.running_var().unwrap());
        assert!(max_diff(&va, &vb) < 1e-7, "train {train}: running variances differ");
    }
    let err = fused.forward_t_with_residual(&x, &x.narrow(3, 0, 5).unwrap(), true, FusedActivation::Relu).unwrap_err();
    assert!(err.to_string().contains("`bn`: shortcut of shape [3, 4, 5, 5]"), "{err}");
}

#[test]
fn layer_norm_matches_pytorch() {
    parity("layer_norm", &case("layer_norm"), WB, |vb, x| {
        LayerNorm::new(&LayerNormConfig::new(&[4, 5]), vb)?.forward(x)
    });
}

#[test]
fn group_norm_matches_pytorch() {
    parity("group_norm", &case("group_norm"), WB, |vb, x| GroupNorm::new(&GroupNormConfig::new(3, 6), vb)?.forward(x));
}

#[test]
fn embedding_matches_pytorch() {
    let c = case("embedding");
    let idx: Vec<u32> = c["idx"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let idx = Tensor::from_vec(idx, (2, 3), &Device::Cpu).unwrap();
    let weight = candle_core::Var::from_tensor(&tensor(&c, "weight")).unwrap();
    let map = [("weight".to_string(), weight.as_tensor().clone())].into_iter().collect();
    let emb = Embedding::new(10, 4, candle_nn::VarBuilder::from_tensors(map, DType::F32, &Device::Cpu)).unwrap();
    let y = emb.forward(&idx).unwrap();
    let grad_out = Tensor::from_vec(values(&c["grad_out"]), y.shape(), &Device::Cpu).unwrap();
    let grads = (&y * grad_out).unwrap().sum_all().unwrap().backward().unwrap();
    assert_close(
        "embedding",
        vec![
            ("y".into(), y, values(&c["y"])),
            ("grad_weight".into(), grads.get(&weight).unwrap().clone(), values(&c["grad_weight"])),
        ],
    );
    let err = emb.forward(&Tensor::new(&[3u32, 10], &Device::Cpu).unwrap()).unwrap_err().to_string();
    assert!(err.contains("index 10") && err.contains("10 embeddings"), "{err}");
}

#[test]
fn norms_pass_finite_difference_check() {
    for (b, dims) in [(4usize, vec![3usize, 2, 2]), (5, vec![3])] {
        let shape: Vec<usize> = std::iter::once(b).chain(dims).collect();
        gradcheck(
            random(&shape, 1),
            &[("weight", &[3]), ("bias", &[3]), ("running_mean", &[3]), ("running_var", &[3])],
            |vb, x| BatchNorm::new(&BatchNormConfig::new(3), vb)?.forward_t(x, true),
        );
        gradcheck(
            random(&shape, 2),
            &[("weight", &[3]), ("bias", &[3]), ("running_mean", &[3]), ("running_var", &[3])],
            |vb, x| BatchNorm::new(&BatchNormConfig::new(3), vb)?.forward_t(x, false),
        );
    }
    gradcheck(random(&[2, 3, 4], 3), &[("weight", &[3, 4]), ("bias", &[3, 4])], |vb, x| {
        LayerNorm::new(&LayerNormConfig::new(&[3, 4]), vb)?.forward(x)
    });
    gradcheck(random(&[2, 4, 2, 3], 4), &[("weight", &[4]), ("bias", &[4])], |vb, x| {
        GroupNorm::new(&GroupNormConfig::new(2, 4), vb)?.forward(x)
    });
    // Embedding: gradient with respect to the table.
    let idx = Tensor::new(&[[1u32, 3, 1], [0, 2, 3]], &Device::Cpu).unwrap();
    let up = random(&[2, 3, 2], 9);
    let report = ember_kernels::gradcheck::check_gradients(
        |t| {
            let map = [("weight".to_string(), t[0].clone())].into_iter().collect();
            let emb = Embedding::new(4, 2, candle_nn::VarBuilder::from_tensors(map, DType::F64, &Device::Cpu))?;
            (emb.forward(&idx)? * &up)?.sum_all()
        },
        &[random(&[4, 2], 8)],
        1e-6,
    )
    .unwrap();
    assert!(report.max_rel_error < common::GRAD_TOL, "{report:?}");
}

#[test]
fn dropout_is_seeded_scaled_and_off_in_eval() {
    let x = Tensor::ones((64, 32), DType::F32, &Device::Cpu).unwrap();
    let cfg = DropoutConfig { p: 0.25, seed: 3 };
    let a = Dropout::new(&cfg).unwrap().forward_t(&x, true).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = Dropout::new(&cfg).unwrap().forward_t(&x, true).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a, b, "same seed, same mask");
    assert!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    let dropped = a.iter().filter(|&&v| v == 0.0).count() as f64 / a.len() as f64;
    assert!((dropped - 0.25).abs() < 0.04, "dropped {dropped}");
    let layer = Dropout::new(&cfg).unwrap();
    let first = layer.forward_t(&x, true).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let second = layer.forward_t(&x, true).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_ne!(first, second, "masks differ from call to call");
    let eval = layer.forward_t(&x, false).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(eval.iter().all(|&v| v == 1.0));
    assert!(Dropout::new(&DropoutConfig { p: 1.5, seed: 0 }).is_err());
}

#[test]
fn dropout2d_drops_whole_channels() {
    let x = Tensor::ones((8, 16, 3, 3), DType::F32, &Device::Cpu).unwrap();
    let y = Dropout2d::new(&DropoutConfig { p: 0.5, seed: 1 }).unwrap().forward_t(&x, true).unwrap();
    let per_channel = y.flatten_from(2).unwrap().to_vec3::<f32>().unwrap();
    let mut zeros = 0;
    for channel in per_channel.iter().flatten() {
        assert!(channel.iter().all(|&v| v == channel[0]), "a channel is all kept or all dropped");
        assert!(channel[0] == 0.0 || channel[0] == 2.0);
        zeros += (channel[0] == 0.0) as usize;
    }
    assert!((32..=96).contains(&zeros), "{zeros} of 128 channels dropped");
    assert!(Dropout2d::new(&DropoutConfig { p: 0.5, seed: 1 }).unwrap().forward_t(&random(&[3, 4], 0), true).is_err());
}

#[test]
fn batch_norm_wrong_channels_names_layer_and_shapes() {
    let store = ParamStore::new(0, &Device::Cpu);
    let bn = BatchNorm::new(&BatchNormConfig::new(8), store.var_builder(DType::F32).pp("features.1")).unwrap();
    let err =
        bn.forward_t(&Tensor::zeros((2, 4, 5, 5), DType::F32, &Device::Cpu).unwrap(), true).unwrap_err().to_string();
    assert!(
        err.contains("features.1") && err.contains("(batch, 8, height, width)") && err.contains("[2, 4, 5, 5]"),
        "{err}"
    );
    let err = bn.forward_t(&Tensor::zeros((1, 8), DType::F32, &Device::Cpu).unwrap(), true).unwrap_err().to_string();
    assert!(err.contains("more than 1 value"), "{err}");
}
