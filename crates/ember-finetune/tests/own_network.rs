//! A network written here, outside the zoo, with `#[derive(ModuleTree)]` and no registration,
//! gets what zoo models get: a summary with parameter counts, freezing by glob pattern (batch
//! norm statistics included), strict and lenient loading with a report, LoRA on its `Linear`
//! and `Conv2d` layers with merge, and `fine_tune`.

use std::sync::Arc;

use candle_core::{DType, Device, Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;
use ember_data::{mnist_sample, DataLoader, Dataset, Split, Subset};
use ember_finetune::{
    attach_lora, fine_tune, load_tree, Error, FineTuneConfig, FineTuneModel, LoadOptions, LoraConfig,
};
use ember_kernels::Conv2dParams;
use ember_layers::loss::cross_entropy;
use ember_layers::{
    freeze, split_state, trainable_vars, tree_summary, Activation, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig,
    EntryMut, Flatten, Linear, ModuleTree, ParamStore,
};
use ember_optim::{Adam, AdamConfig, Optimizer};
use ember_zoo::{ModelOptions, Network, Preprocessing};

/// Two strided convolutions with batch norm, and a linear head: 28x28 digits to 10 classes.
#[derive(ModuleTree)]
struct SmallNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    head: Linear,
}

impl SmallNet {
    fn new(vb: VarBuilder) -> Result<Self> {
        let conv = |c_in, c_out, vb| {
            let params = Conv2dParams { stride: 2, padding: 1, ..Default::default() };
            Conv2d::new(&Conv2dConfig { params, ..Conv2dConfig::new(c_in, c_out, 3) }, vb)
        };
        Ok(Self {
            conv1: conv(1, 8, vb.pp("conv1"))?,
            bn1: BatchNorm::new(&BatchNormConfig::new(8), vb.pp("bn1"))?,
            conv2: conv(8, 16, vb.pp("conv2"))?,
            bn2: BatchNorm::new(&BatchNormConfig::new(16), vb.pp("bn2"))?,
            head: Linear::new(16 * 7 * 7, 10, true, vb.pp("head"))?,
        })
    }
}

impl ModuleT for SmallNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let x = xs.apply(&self.conv1)?.apply_t(&self.bn1, train)?.apply(&Activation::Relu)?;
        let x = x.apply(&self.conv2)?.apply_t(&self.bn2, train)?.apply(&Activation::Relu)?;
        self.head.forward(&x.apply(&Flatten)?)
    }
}

// conv1 8·1·9 + 8, bn1 8 + 8, conv2 16·8·9 + 16, bn2 16 + 16, head 784·10 + 10.
const PARAMS: usize = (72 + 8) + 16 + (1152 + 16) + 32 + (7840 + 10);

fn small_net(seed: u64) -> (ParamStore, SmallNet) {
    let store = ParamStore::new(seed, &Device::Cpu);
    let net = SmallNet::new(store.var_builder(DType::F32)).unwrap();
    (store, net)
}

fn digits() -> Tensor {
    Tensor::rand(0f32, 1.0, (8, 1, 28, 28), &Device::Cpu).unwrap()
}

fn labels() -> Tensor {
    Tensor::new(&[0u32, 1, 2, 3, 4, 5, 6, 7], &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
}

fn state_bits(model: &impl ModuleTree) -> Vec<(String, Vec<u32>)> {
    split_state(model).all().map(|(n, t)| (n.clone(), bits(t))).collect()
}

#[test]
fn summary_counts_every_parameter_by_child_and_layer() {
    let (store, net) = small_net(0);
    let summary = tree_summary(&net);
    assert_eq!(summary.total_params, PARAMS);
    assert_eq!(summary.total_params, store.num_parameters());
    assert_eq!(summary.trainable_params, PARAMS);
    let children: Vec<(&str, usize, usize)> =
        summary.children.iter().map(|c| (c.name.as_str(), c.params, c.buffer_elems)).collect();
    assert_eq!(children, [("conv1", 80, 0), ("bn1", 16, 16), ("conv2", 1168, 0), ("bn2", 32, 32), ("head", 7850, 0)]);
    let table = summary.to_string();
    for row in ["conv1   Conv2d               80", "head    Linear            7,850", "total parameters: 9,146"] {
        assert!(table.contains(row), "the table lacks {row}:\n{table}");
    }
}

#[test]
fn freezing_by_glob_holds_parameters_and_batch_norm_statistics_still() {
    let (_, mut net) = small_net(1);
    let report = freeze(&mut net, &["conv1.*", "bn1.*"]);
    assert_eq!(report.params, ["conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias"]);
    assert_eq!(report.batch_norms, ["bn1"]);
    assert_eq!(tree_summary(&net).trainable_params, PARAMS - 96);
    let before = state_bits(&net);
    let mut opt = Adam::new(trainable_vars(&net), AdamConfig { lr: 1e-2, ..AdamConfig::default() }).unwrap();
    for _ in 0..3 {
        let loss = cross_entropy(&net.forward_t(&digits(), true).unwrap(), &labels()).unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
    }
    for ((name, old), (_, new)) in before.iter().zip(state_bits(&net)) {
        let frozen = name.starts_with("conv1.") || name.starts_with("bn1.");
        assert_eq!(*old == new, frozen, "{name}: frozen {frozen}, unchanged {}", *old == new);
    }
}

#[test]
fn strict_and_lenient_loading_report_what_matched() {
    let (_, source) = small_net(2);
    let (_, target) = small_net(3);
    let x = digits();
    let state: Vec<(String, Tensor)> = split_state(&source).all().cloned().collect();

    // Strict, complete: everything loads and the outputs agree.
    let report = load_tree(&target, state.clone(), &LoadOptions::strict(), "source").unwrap();
    assert_eq!(report.loaded.len(), 14);
    assert!(report.is_complete());
    assert_eq!(max_abs_diff(&source.forward_t(&x, false).unwrap(), &target.forward_t(&x, false).unwrap()), 0.0);

    // A checkpoint without the head and with a stray tensor.
    let (_, fresh) = small_net(4);
    let before = state_bits(&fresh);
    let mut partial: Vec<(String, Tensor)> = state.into_iter().filter(|(n, _)| !n.starts_with("head.")).collect();
    partial.push(("extra.weight".into(), Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap()));
    let err = load_tree(&fresh, partial.clone(), &LoadOptions::strict(), "partial.safetensors").unwrap_err();
    assert!(matches!(err, Error::StateMismatch { .. }), "{err}");
    for name in ["partial.safetensors", "head.weight", "extra.weight"] {
        assert!(err.to_string().contains(name), "{err}");
    }
    assert_eq!(state_bits(&fresh), before, "a refused strict load changed the model");

    let report = load_tree(&fresh, partial, &LoadOptions::lenient(), "partial.safetensors").unwrap();
    assert_eq!(report.loaded.len(), 12);
    assert_eq!(report.missing, ["head.bias", "head.weight"]);
    assert_eq!(report.unexpected, ["extra.weight"]);
    // Loaded tensors hold the source's values; the missing head kept its own.
    let source_bits = state_bits(&source);
    for (((name, old), (_, new)), (_, src)) in before.iter().zip(&state_bits(&fresh)).zip(&source_bits) {
        let expected = if name.starts_with("head.") { old } else { src };
        assert_eq!(new, expected, "{name}");
    }
    assert_ne!(before.iter().find(|(n, _)| n == "conv1.weight"), source_bits.iter().find(|(n, _)| n == "conv1.weight"));
}

#[test]
fn lora_adapts_linear_and_conv_layers_and_merges_back() {
    let (_, mut net) = small_net(5);
    let cfg = LoraConfig { train_also: Vec::new(), seed: 3, ..LoraConfig::new(2, &["conv*", "head"]) };
    let adapters = attach_lora(&mut net, &cfg).unwrap();
    assert_eq!(adapters.num_targets(), 3);
    let trainable: Vec<String> = trainable_vars(&net).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        trainable,
        ["conv1.lora_A", "conv1.lora_B", "conv2.lora_A", "conv2.lora_B", "head.lora_A", "head.lora_B"]
    );
    // A (2, fan_in) and B (out, 2) per layer.
    let adapter_params = 2 * (9 + 8) + 2 * (72 + 16) + 2 * (784 + 10);
    assert_eq!(tree_summary(&net).trainable_params, adapter_params);
    assert_eq!(tree_summary(&net).total_params, PARAMS + adapter_params);

    let base_before: Vec<(String, Vec<u32>)> =
        state_bits(&net).into_iter().filter(|(n, _)| !n.contains("lora")).collect();
    let x = digits();
    let start = net.forward_t(&x, false).unwrap();
    let mut opt = Adam::new(trainable_vars(&net), AdamConfig { lr: 1e-2, ..AdamConfig::default() }).unwrap();
    for _ in 0..5 {
        let loss = cross_entropy(&net.forward_t(&x, true).unwrap(), &labels()).unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
    }
    let adapted = net.forward_t(&x, false).unwrap();
    assert!(max_abs_diff(&start, &adapted) > 1e-3, "training the adapters changed nothing");
    // Base weights and biases untouched; the batch norms were not frozen, so their running
    // statistics followed the batches (they are buffers, not trained parameters).
    let base_after: Vec<(String, Vec<u32>)> =
        state_bits(&net).into_iter().filter(|(n, _)| !n.contains("lora")).collect();
    for ((name, old), (_, new)) in base_before.iter().zip(&base_after) {
        assert_eq!(old == new, !name.contains("running"), "{name}");
    }
    let adapted = net.forward_t(&x, false).unwrap();

    // Merge, then take the adapters off: the plain network computes what the adapted one did.
    assert_eq!(adapters.merge(&mut net).unwrap(), 3);
    net.visit_mut(&mut |_, entry| {
        if let EntryMut::Param(p) = entry {
            p.take_low_rank();
        }
    });
    assert_eq!(tree_summary(&net).total_params, PARAMS);
    let merged = net.forward_t(&x, false).unwrap();
    assert!(max_abs_diff(&adapted, &merged) < 1e-5, "{}", max_abs_diff(&adapted, &merged));

    // Only Linear and Conv2d layers are adapted: batch norms are not targets.
    let (_, mut other) = small_net(6);
    let err = attach_lora(&mut other, &LoraConfig::new(2, &["bn*"])).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
}

#[test]
fn fine_tune_trains_a_network_of_ones_own() {
    let (store, net) = small_net(7);
    let options = ModelOptions::new((1, 28, 28), 10);
    let network = Network::from_module("small-net", net);
    let mut model = FineTuneModel::from_network(network, store, &options, Preprocessing::UNIT).unwrap();
    assert_eq!(model.head.head, "head");
    assert_eq!(model.head.layers, ["conv1", "bn1", "conv2", "bn2", "head"]);

    let train_all: Arc<dyn Dataset> = Arc::new(mnist_sample(Split::Train).unwrap());
    let train = Arc::new(Subset::new(train_all, (0..2000).collect()).unwrap());
    let test_all: Arc<dyn Dataset> = Arc::new(mnist_sample(Split::Test).unwrap());
    let test = DataLoader::new(Arc::new(Subset::new(test_all, (0..500).collect()).unwrap()), 250);
    let before = ember_train::evaluate(&model, &test, 10).unwrap().confusion.accuracy();
    let train = DataLoader::new(train, 32).with_shuffle(1);
    let cfg = FineTuneConfig { head_epochs: 1, epochs: 2, lr: 3e-3, head_lr: 3e-3, ..FineTuneConfig::default() };
    let report = fine_tune(&mut model, &train, None, &cfg, &mut |_| {}).unwrap();
    // The forward pass does not report the head's input, so the head phase runs through the
    // frozen network (one epoch) instead of on cached features; then two full epochs. (2,000
    // digits: 0.108 -> 0.846 measured; chance is 0.1.)
    assert!(report.head.is_empty());
    assert_eq!(report.epochs.len(), 3);
    let after = ember_train::evaluate(&model, &test, 10).unwrap().confusion.accuracy();
    assert!(after > 0.8 && after > before + 0.5, "test accuracy {before} -> {after}");
}
