//! A PyTorch `nn.Sequential` state_dict (safetensors, buffers included) loads into ember's
//! `Sequential` under the same names and gives the same eval output (`fixtures/gen_sequential.py`).

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::ModuleT;
use common::{assert_close, cases, tensor, values};
use ember_kernels::Conv2dParams;
use ember_layers::{
    Activation, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Dropout, DropoutConfig, Flatten, Linear, MaxPool2d,
    ParamStore, Sequential,
};

fn model(store: &ParamStore) -> Sequential {
    let conv = Conv2dConfig { params: Conv2dParams { padding: 1, ..Default::default() }, ..Conv2dConfig::new(2, 4, 3) };
    Sequential::builder(store.var_builder(DType::F32))
        .layer(|vb| Conv2d::new(&conv, vb))
        .and_then(|b| b.layer(|vb| BatchNorm::new(&BatchNormConfig::new(4), vb)))
        .unwrap()
        .stateless(Activation::Relu)
        .stateless(MaxPool2d::new(2, 2, 0))
        .stateless(Flatten)
        .layer(|vb| Linear::new(36, 5, true, vb))
        .unwrap()
        .build()
}

#[test]
fn sequential_loads_pytorch_safetensors_and_matches_eval_output() {
    let store = ParamStore::new(0, &Device::Cpu);
    let seq = model(&store);
    assert_eq!(seq.len(), 6);
    let state: Vec<String> = store.state().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        state,
        ["0.bias", "0.weight", "1.bias", "1.running_mean", "1.running_var", "1.weight", "5.bias", "5.weight"]
    );
    let file =
        candle_core::safetensors::load_buffer(include_bytes!("fixtures/sequential.safetensors"), &Device::Cpu).unwrap();
    let mut loaded = 0;
    for (name, t) in &file {
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        store.assign(name, t).unwrap();
        loaded += 1;
    }
    assert_eq!(loaded, state.len(), "every tensor of the PyTorch state_dict has an ember counterpart");
    let case = &cases(include_str!("fixtures/sequential.json"))["eval"];
    let y = seq.forward_t(&tensor(case, "x"), false).unwrap();
    assert_close("sequential_eval", vec![("y".into(), y, values(&case["y"]))]);
}

#[test]
fn sequential_passes_train_flag_to_every_layer() {
    let store = ParamStore::new(1, &Device::Cpu);
    let seq = Sequential::builder(store.var_builder(DType::F32).pp("head"))
        .layer(|vb| Linear::new(8, 8, false, vb))
        .unwrap()
        .stateless(Dropout::new(&DropoutConfig { p: 0.5, seed: 0 }).unwrap())
        .build();
    assert_eq!(store.names(), ["head.0.weight"]);
    let x = Tensor::ones((16, 8), DType::F32, &Device::Cpu).unwrap();
    let eval_a = seq.forward_t(&x, false).unwrap().to_vec2::<f32>().unwrap();
    let eval_b = seq.forward_t(&x, false).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(eval_a, eval_b);
    let train = seq.forward_t(&x, true).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(train.iter().filter(|&&v| v == 0.0).count() > 20, "dropout active in train mode");
}
