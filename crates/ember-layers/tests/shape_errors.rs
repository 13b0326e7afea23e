//! Wrong input shapes give errors naming the layer, the expected and the actual shape.

use candle_core::{DType, Device, Tensor};
use candle_nn::Module;
use ember_layers::{loss, Conv2d, Conv2dConfig, Linear, MaxPool2d, ParamStore};

#[test]
fn conv2d_wrong_channel_count_names_layer_and_shapes() {
    let store = ParamStore::new(0, &Device::Cpu);
    let conv = Conv2d::new(&Conv2dConfig::new(3, 8, 3), store.var_builder(DType::F32).pp("features.0")).unwrap();
    let err = conv.forward(&Tensor::zeros((2, 1, 28, 28), DType::F32, &Device::Cpu).unwrap()).unwrap_err().to_string();
    assert!(
        err.contains("features.0") && err.contains("(batch, 3, height, width)") && err.contains("[2, 1, 28, 28]"),
        "{err}"
    );
    let err = conv.forward(&Tensor::zeros((3, 28, 28), DType::F32, &Device::Cpu).unwrap()).unwrap_err().to_string();
    assert!(err.contains("features.0") && err.contains("[3, 28, 28]"), "{err}");
    let err = conv.forward(&Tensor::zeros((1, 3, 2, 2), DType::F32, &Device::Cpu).unwrap()).unwrap_err().to_string();
    assert!(err.contains("smaller than"), "{err}");
}

#[test]
fn linear_wrong_feature_count_names_layer_and_shapes() {
    let store = ParamStore::new(0, &Device::Cpu);
    let fc = Linear::new(1600, 128, true, store.var_builder(DType::F32).pp("fc1")).unwrap();
    let err = fc.forward(&Tensor::zeros((4, 1024), DType::F32, &Device::Cpu).unwrap()).unwrap_err().to_string();
    assert!(err.contains("fc1") && err.contains("1600") && err.contains("[4, 1024]"), "{err}");
}

#[test]
fn max_pool_and_loss_reject_wrong_ranks() {
    let err = MaxPool2d::new(2, 2, 0)
        .forward(&Tensor::zeros((4, 4), DType::F32, &Device::Cpu).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("[4, 4]"), "{err}");
    let logits = Tensor::zeros((4, 10), DType::F32, &Device::Cpu).unwrap();
    let err = loss::cross_entropy(&logits, &Tensor::new(&[1u32, 2, 3], &Device::Cpu).unwrap()).unwrap_err().to_string();
    assert!(err.contains("[3]"), "{err}");
    let err =
        loss::cross_entropy(&logits, &Tensor::new(&[1u32, 2, 3, 10], &Device::Cpu).unwrap()).unwrap_err().to_string();
    assert!(err.contains("class 10"), "{err}");
}

#[test]
fn param_store_initialisation_is_seeded_and_names_follow_pytorch() {
    let make = |seed| {
        let store = ParamStore::new(seed, &Device::Cpu);
        Conv2d::new(&Conv2dConfig::new(1, 4, 3), store.var_builder(DType::F32).pp("conv1")).unwrap();
        store.get("conv1.weight").unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    assert_eq!(make(5), make(5));
    assert_ne!(make(5), make(6));
    // PyTorch's default bound for fan_in 9 is 1/3.
    assert!(make(5).iter().all(|v| v.abs() <= 1.0 / 3.0));
}
