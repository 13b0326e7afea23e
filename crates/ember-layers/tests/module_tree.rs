//! The model tree of a network written in the test with `#[derive(ModuleTree)]` and nothing
//! else (no registration, no names spelled out): paths equal the `ParamStore`'s `state_dict`,
//! buffers are told apart by type, and the summary, split and freezing work on it as on any
//! zoo model.

use std::collections::BTreeMap;

use candle_core::{DType, Device, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;
use ember_kernels::Conv2dParams;
use ember_layers::{
    freeze, split_state, trainable_vars, tree_summary, unfreeze, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig,
    Entry, Flatten, GlobalAvgPool2d, LayerKind, Linear, Lstm, ModuleTree, ParamStore, RecurrentConfig, Sequential,
};

/// torchvision's projection shortcut: an `nn.Sequential` of a convolution and a batch norm.
#[derive(ModuleTree)]
struct Downsample {
    #[module(rename = "0")]
    conv: Conv2d,
    #[module(rename = "1")]
    bn: BatchNorm,
}

#[derive(ModuleTree)]
struct Block {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    downsample: Option<Downsample>,
}

#[derive(ModuleTree)]
struct Net {
    stem: Conv2d,
    blocks: Vec<Block>,
    pool: GlobalAvgPool2d,
    fc: Linear,
    #[module(skip)]
    classes: usize,
}

fn conv(c_in: usize, c_out: usize, kernel: usize, bias: bool, vb: VarBuilder) -> Result<Conv2d> {
    let params = Conv2dParams { padding: kernel / 2, ..Default::default() };
    Conv2d::new(&Conv2dConfig { params, bias, ..Conv2dConfig::new(c_in, c_out, kernel) }, vb)
}

impl Block {
    fn new(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Self> {
        let downsample = if c_in != c_out {
            let ds = vb.pp("downsample");
            Some(Downsample { conv: conv(c_in, c_out, 1, false, ds.pp(0))?, bn: bn(c_out, ds.pp(1))? })
        } else {
            None
        };
        Ok(Self {
            conv1: conv(c_in, c_out, 3, false, vb.pp("conv1"))?,
            bn1: bn(c_out, vb.pp("bn1"))?,
            conv2: conv(c_out, c_out, 3, false, vb.pp("conv2"))?,
            downsample,
        })
    }
}

fn bn(c: usize, vb: VarBuilder) -> Result<BatchNorm> {
    BatchNorm::new(&BatchNormConfig::new(c), vb)
}

impl ModuleT for Block {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let y = xs.apply(&self.conv1)?.apply_t(&self.bn1, train)?.relu()?.apply(&self.conv2)?;
        let shortcut = match &self.downsample {
            Some(ds) => xs.apply(&ds.conv)?.apply_t(&ds.bn, train)?,
            None => xs.clone(),
        };
        (y + shortcut)?.relu()
    }
}

impl Net {
    fn new(classes: usize, vb: VarBuilder) -> Result<Self> {
        let blocks = vec![Block::new(8, 8, vb.pp("blocks.0"))?, Block::new(8, 16, vb.pp("blocks.1"))?];
        Ok(Self {
            stem: conv(3, 8, 3, true, vb.pp("stem"))?,
            blocks,
            pool: GlobalAvgPool2d,
            fc: Linear::new(16, classes, true, vb.pp("fc"))?,
            classes,
        })
    }
}

impl ModuleT for Net {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = xs.apply(&self.stem)?.relu()?;
        for block in &self.blocks {
            x = block.forward_t(&x, train)?;
        }
        let logits = x.apply(&self.pool)?.apply(&Flatten)?.apply(&self.fc)?;
        assert_eq!(logits.dim(1)?, self.classes);
        Ok(logits)
    }
}

fn net() -> (ParamStore, Net) {
    let store = ParamStore::new(7, &Device::Cpu);
    let net = Net::new(5, store.var_builder(DType::F32)).unwrap();
    (store, net)
}

/// `(path, shape)` of every parameter and buffer, in visit order.
fn tensors(model: &(impl ModuleTree + ?Sized)) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    model.visit(&mut |path, entry| match entry {
        Entry::Param(p) => out.push((path.to_string(), p.tensor().dims().to_vec())),
        Entry::Buffer(b) => out.push((path.to_string(), b.tensor().dims().to_vec())),
        Entry::Layer(_) => {}
    });
    out
}

fn sorted(mut v: Vec<(String, Vec<usize>)>) -> Vec<(String, Vec<usize>)> {
    v.sort();
    v
}

#[test]
fn derived_tree_visits_the_store_state_in_state_dict_order() {
    let (store, net) = net();
    let visited = tensors(&net);
    let paths: Vec<&str> = visited.iter().map(|(p, _)| p.as_str()).collect();
    // PyTorch's order: a module's parameters, then its buffers, then its children, in order.
    let bn = |p: &str| ["weight", "bias", "running_mean", "running_var"].map(|s| format!("{p}.{s}"));
    let mut expected = vec!["stem.weight".to_string(), "stem.bias".into(), "blocks.0.conv1.weight".into()];
    expected.extend(bn("blocks.0.bn1"));
    expected.extend(["blocks.0.conv2.weight".into(), "blocks.1.conv1.weight".into()]);
    expected.extend(bn("blocks.1.bn1"));
    expected.extend(["blocks.1.conv2.weight".into(), "blocks.1.downsample.0.weight".into()]);
    expected.extend(bn("blocks.1.downsample.1"));
    expected.extend(["fc.weight".into(), "fc.bias".into()]);
    assert_eq!(paths, expected);

    let state: Vec<(String, Vec<usize>)> = store.state().into_iter().map(|(k, t)| (k, t.dims().to_vec())).collect();
    assert_eq!(sorted(visited), state);

    let mut layers = Vec::new();
    net.visit(&mut |path, entry| {
        if let Entry::Layer(kind) = entry {
            layers.push((path.to_string(), kind));
        }
    });
    assert_eq!(layers[0], (String::new(), LayerKind::Module("Net")));
    assert!(layers.contains(&("blocks.1".to_string(), LayerKind::Module("Block"))));
    assert!(layers.contains(&("blocks.1.downsample.1".to_string(), LayerKind::BatchNorm)));
    assert!(layers.contains(&("pool".to_string(), LayerKind::AdaptiveAvgPool2d)));
    assert!(!layers.iter().any(|(p, _)| p == "blocks.0.downsample" || p == "classes"));
}

/// A wrapper that adds no layer: its tree is the wrapped network's.
#[derive(ModuleTree)]
struct Wrapped {
    #[module(skip)]
    name: &'static str,
    #[module(transparent)]
    net: Box<Net>,
}

#[test]
fn transparent_field_is_the_whole_tree_under_the_same_paths() {
    let (_store, mut net) = net();
    let layers = |model: &dyn ModuleTree| {
        let mut layers = Vec::new();
        model.visit(&mut |path, entry| {
            if let Entry::Layer(kind) = entry {
                layers.push((path.to_string(), kind));
            }
        });
        layers
    };
    let paths_mut = |model: &mut dyn ModuleTree| {
        let mut paths = Vec::new();
        model.visit_mut(&mut |path, _| paths.push(path.to_string()));
        paths
    };
    let (expected_tensors, expected_layers, expected_mut) = (tensors(&net), layers(&net), paths_mut(&mut net));
    let mut wrapped = Wrapped { name: "wrapped", net: Box::new(net) };
    assert_eq!(tensors(&wrapped), expected_tensors, "{}", wrapped.name);
    assert_eq!(layers(&wrapped), expected_layers, "no entry of its own");
    assert_eq!(paths_mut(&mut wrapped), expected_mut);
}

#[test]
fn split_state_tells_buffers_by_type_and_shares_the_store_variables() {
    let (store, net) = net();
    let split = split_state(&net);
    let names = |v: &[(String, Tensor)]| {
        let mut n: Vec<String> = v.iter().map(|(k, _)| k.clone()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&split.params), store.names());
    assert_eq!(names(&split.buffers), store.buffer_names());
    assert!(split.buffers.iter().all(|(k, _)| k.ends_with(".running_mean") || k.ends_with(".running_var")));
    assert_eq!(split.num_params(), store.num_parameters());
    assert_eq!(split.all().count(), store.state().len());

    // The tree's parameters are the store's variables, not copies: an optimizer can take them.
    let vars = trainable_vars(&net);
    assert_eq!(vars.len(), store.vars().len());
    for (name, var) in vars {
        let stored = store.get(&name).unwrap();
        assert_eq!(var.as_tensor().id(), stored.as_tensor().id(), "{name}");
    }
}

#[test]
fn tree_summary_counts_parameters_per_child_and_module() {
    let (store, net) = net();
    let summary = tree_summary(&net);
    let children: Vec<(&str, usize, usize)> =
        summary.children.iter().map(|c| (c.name.as_str(), c.params, c.buffer_elems)).collect();
    let block0 = 8 * 8 * 9 + 2 * 8 + 8 * 8 * 9;
    let block1 = 16 * 8 * 9 + 2 * 16 + 16 * 16 * 9 + 16 * 8 + 2 * 16;
    assert_eq!(
        children,
        [("stem", 8 * 3 * 9 + 8, 0), ("blocks", block0 + block1, 2 * 8 + 2 * 16 + 2 * 16), ("fc", 16 * 5 + 5, 0)]
    );
    assert_eq!(summary.total_params, store.num_parameters());
    assert_eq!(summary.trainable_params, summary.total_params);
    assert_eq!(summary.buffer_elems, 80);
    let module = |path: &str| summary.modules.iter().find(|m| m.path == path).unwrap().clone();
    assert_eq!(module("").params, summary.total_params);
    assert_eq!(module("blocks.1").params, block1);
    assert_eq!((module("blocks.1.downsample").params, module("blocks.1.downsample").buffer_elems), (16 * 8 + 32, 32));
    assert_eq!(module("pool").params, 0);
    assert_eq!(summary.tensors.len(), store.state().len());
    assert!(summary.tensors.iter().filter(|t| t.buffer).all(|t| t.path.contains("running_")));
    // The printed table: one indented line per module with its counts, then the totals.
    let table = summary.to_string();
    let line = |name: &str| table.lines().find(|l| l.trim_start().starts_with(name)).unwrap().to_string();
    assert!(line("downsample").starts_with("    downsample"), "{table}");
    let block1_line = line("1 ");
    assert!(block1_line.starts_with("  1 ") && block1_line.contains("Block"), "{table}");
    assert!(block1_line.contains(&format!("{},{:03}", block1 / 1000, block1 % 1000)), "{table}");
    assert!(table.ends_with("buffer elements: 80\n"), "{table}");
    let total = summary.total_params;
    let total = format!("{},{:03}", total / 1000, total % 1000);
    assert!(table.contains(&format!("total parameters: {total} ({total} trainable, 0 frozen)")), "{table}");
}

#[test]
fn frozen_parameters_and_batch_norms_stay_bit_identical_through_a_training_step() {
    let (store, mut net) = net();
    let report = freeze(&mut net, &["stem.*", "blocks.0.*"]);
    assert_eq!(
        report.params,
        [
            "stem.weight",
            "stem.bias",
            "blocks.0.conv1.weight",
            "blocks.0.bn1.weight",
            "blocks.0.bn1.bias",
            "blocks.0.conv2.weight"
        ]
    );
    assert_eq!(report.batch_norms, ["blocks.0.bn1"]);
    assert_eq!(
        tree_summary(&net).trainable_params,
        store.num_parameters() - tree_summary(&net).children[0].params - (8 * 8 * 9 * 2 + 16)
    );

    let before: BTreeMap<String, Vec<f32>> =
        store.state().into_iter().map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1().unwrap())).collect();
    let xs = Tensor::randn(0f32, 1., (4, 3, 6, 6), &Device::Cpu).unwrap();
    let loss = net.forward_t(&xs, true).unwrap().sqr().unwrap().mean_all().unwrap();
    let grads = loss.backward().unwrap();
    let trainable = trainable_vars(&net);
    assert_eq!(trainable.len(), store.vars().len() - report.params.len());
    for (name, var) in store.vars() {
        let grad = grads.get(var.as_tensor());
        assert_eq!(grad.is_some(), !report.params.contains(&name), "{name}: a frozen parameter gets no gradient");
    }
    // Plain SGD over what the tree says is trainable.
    for (_, var) in &trainable {
        let grad = grads.get(var.as_tensor()).unwrap();
        var.set(&(var.as_tensor() - (grad * 0.1).unwrap()).unwrap()).unwrap();
    }

    for (name, t) in store.state() {
        let now: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let frozen = name.starts_with("stem.") || name.starts_with("blocks.0.");
        assert_eq!(now == before[&name], frozen, "{name}: frozen tensors stay, the others move");
    }

    let released = unfreeze(&mut net, &["blocks.0.*"]);
    assert_eq!(released.batch_norms, ["blocks.0.bn1"]);
    assert_eq!(trainable_vars(&net).len(), store.vars().len() - 2);
}

/// A struct holding a `Sequential` and a bidirectional LSTM.
#[derive(ModuleTree)]
struct Mixed {
    features: Sequential,
    lstm: Lstm,
}

#[test]
fn sequential_and_recurrent_layers_report_pytorch_paths() {
    let store = ParamStore::new(0, &Device::Cpu);
    let vb = store.var_builder(DType::F32);
    let features = Sequential::builder(vb.pp("features"))
        .layer(|vb| conv(1, 4, 3, true, vb))
        .and_then(|b| b.layer(|vb| bn(4, vb)))
        .unwrap()
        .stateless(ember_layers::Activation::Relu)
        .build();
    let cfg = RecurrentConfig { bidirectional: true, num_layers: 2, ..RecurrentConfig::new(6, 3) };
    let model = Mixed { features, lstm: Lstm::new(&cfg, vb.pp("lstm")).unwrap() };
    let state: Vec<(String, Vec<usize>)> = store.state().into_iter().map(|(k, t)| (k, t.dims().to_vec())).collect();
    assert_eq!(sorted(tensors(&model)), state);
    assert!(tensors(&model).iter().any(|(p, _)| p == "lstm.weight_hh_l1_reverse"));

    let mut layers = Vec::new();
    model.visit(&mut |path, entry| {
        if let Entry::Layer(kind) = entry {
            layers.push(format!("{path}:{kind}"));
        }
    });
    assert_eq!(
        layers,
        [
            ":Mixed",
            "features:sequential",
            "features.0:conv2d",
            "features.1:batch_norm",
            "features.2:activation",
            "lstm:lstm"
        ]
    );
}

/// A generic wrapper (bounds come from the fields) and a tuple struct (fields named `0`, `1`).
#[derive(ModuleTree)]
struct Head<L> {
    fc: L,
    #[module(skip)]
    note: &'static str,
}

#[derive(ModuleTree)]
struct Pair(Linear, Option<Linear>);

#[test]
fn derive_handles_generic_and_tuple_structs() {
    let store = ParamStore::new(0, &Device::Cpu);
    let vb = store.var_builder(DType::F32);
    let head = Head { fc: Linear::new(3, 2, false, vb.pp("head.fc")).unwrap(), note: "unused" };
    let pair = Pair(Linear::new(2, 2, true, vb.pp("pair.0")).unwrap(), None);
    let paths = |m: &dyn ModuleTree| tensors(m).into_iter().map(|(p, _)| p).collect::<Vec<_>>();
    assert_eq!(paths(&head), ["fc.weight"]);
    assert_eq!(paths(&pair), ["0.weight", "0.bias"]);
    assert_eq!(head.note, "unused");
}
