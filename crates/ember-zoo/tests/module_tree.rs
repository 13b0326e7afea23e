//! Every zoo model's tree ([`ember_layers::ModuleTree`]) is its `state_dict`: the same paths and
//! shapes as the `ParamStore` it was built from, the store's own variables, and buffers that are
//! exactly the batch norms' running statistics.

use std::cell::RefCell;
use std::collections::BTreeSet;

use candle_core::{DType, Device};
use ember_layers::{freeze, trainable_vars, Entry, LayerKind, ModuleTree, ParamStore};
use ember_zoo::{build_with, ModelOptions, Network, MODELS};

/// Every model at its default input and classes, and every one that takes MNIST-sized input
/// (which switches ResNets to the CIFAR stem) at 1x28x28.
fn cases() -> Vec<(&'static str, ModelOptions)> {
    let mut cases = Vec::new();
    for model in MODELS {
        cases.push((model.name, model.default_options()));
        if model.input != (1, 28, 28) {
            cases.push((model.name, ModelOptions::mnist()));
        }
    }
    cases
}

fn check(name: &str, options: &ModelOptions) {
    let store = ParamStore::new(0, &Device::Cpu);
    let mut network: Network = build_with(name, options, store.var_builder(DType::F32)).unwrap();
    let case = format!("{name} {:?}", options.input);

    let (mut params, mut buffers, mut batch_norms) = (Vec::new(), Vec::new(), Vec::new());
    network.visit(&mut |path, entry| match entry {
        Entry::Param(p) => params.push((path.to_string(), p.tensor().dims().to_vec())),
        Entry::Buffer(b) => buffers.push((path.to_string(), b.tensor().dims().to_vec())),
        Entry::Layer(LayerKind::BatchNorm) => batch_norms.push(path.to_string()),
        Entry::Layer(_) => {}
    });

    // Paths and shapes: exactly the store's state, each path once.
    let mut tree: Vec<(String, Vec<usize>)> = params.iter().chain(&buffers).cloned().collect();
    tree.sort();
    let unique: BTreeSet<&String> = tree.iter().map(|(p, _)| p).collect();
    assert_eq!(unique.len(), tree.len(), "{case}: a path is visited twice");
    let state: Vec<(String, Vec<usize>)> = store.state().into_iter().map(|(k, t)| (k, t.dims().to_vec())).collect();
    assert_eq!(tree, state, "{case}: tree and state_dict differ");

    // Buffers: exactly the running statistics of the batch norms, and what the store calls buffers.
    let mut buffer_paths: Vec<String> = buffers.into_iter().map(|(p, _)| p).collect();
    buffer_paths.sort();
    let mut expected: Vec<String> =
        batch_norms.iter().flat_map(|bn| [format!("{bn}.running_mean"), format!("{bn}.running_var")]).collect();
    expected.sort();
    assert_eq!(buffer_paths, expected, "{case}: buffers are not the batch-norm statistics");
    assert_eq!(buffer_paths, store.buffer_names(), "{case}");

    // Parameters: the store's variables themselves.
    let vars = trainable_vars(&network);
    assert_eq!(vars.len(), store.vars().len(), "{case}");
    for (path, var) in &vars {
        let stored = store.get(path).unwrap_or_else(|| panic!("{case}: `{path}` is not in the store"));
        assert_eq!(var.as_tensor().id(), stored.as_tensor().id(), "{case}: `{path}` is a copy");
    }

    // The batch norms the tree finds are those the model lists by hand (`batch_norms_mut`).
    let listed = RefCell::new(Vec::new());
    network.set_batch_norms_frozen(&|bn| {
        listed.borrow_mut().push(bn.to_string());
        false
    });
    let (mut listed, mut found) = (listed.into_inner(), batch_norms.clone());
    listed.sort();
    found.sort();
    assert_eq!(listed, found, "{case}: batch norms");

    // Freezing everything through the tree reaches every parameter and batch norm.
    let report = freeze(&mut network, &["*"]);
    assert_eq!(report.params.len(), store.vars().len(), "{case}");
    assert_eq!(report.batch_norms, batch_norms, "{case}");
    assert!(trainable_vars(&network).is_empty(), "{case}");
}

#[test]
fn every_zoo_model_tree_equals_its_state_dict() {
    for (name, options) in cases() {
        check(name, &options);
    }
}
