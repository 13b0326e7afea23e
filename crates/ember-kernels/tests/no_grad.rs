//! `no_grad`: kernels record no gradient graph under the guard, guards nest, values are unchanged.

use candle_core::{DType, Device, Tensor, Var};

use ember_kernels::{conv2d, grad_enabled, no_grad, Conv2dParams};

#[test]
fn convolutions_record_nothing_under_no_grad_and_guards_nest() {
    let w = Var::ones((4, 2, 3, 3), DType::F32, &Device::Cpu).unwrap();
    let x = Tensor::ones((1, 2, 8, 8), DType::F32, &Device::Cpu).unwrap();
    let p = Conv2dParams::default();
    let with_graph = conv2d(&x, w.as_tensor(), None, p).unwrap();
    assert!(with_graph.track_op());
    let outer = no_grad();
    {
        let _inner = no_grad();
        assert!(!conv2d(&x, w.as_tensor(), None, p).unwrap().track_op());
    }
    // The inner guard restores the outer one's state, not "enabled".
    let without = conv2d(&x, w.as_tensor(), None, p).unwrap();
    assert!(!without.track_op());
    drop(outer);
    assert!(grad_enabled());
    // Same values either way.
    let diff = (with_graph - without).unwrap().abs().unwrap().max_all().unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
}
