//! The tensor-op update path (what parameters off the CPU take) against the fused CPU kernel:
//! every rule and variant, step by step, parameters and state; and state saved on one path
//! resuming on the other.

mod common;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use ember_optim::{
    Adagrad, AdagradConfig, AdamConfig, Error, FusedOptimizer, GroupOptions, OneCycle, Optimizer, OptimizerState,
    ParamGroup, RmsProp, RmsPropConfig, Schedule, Sgd, SgdConfig, UpdatePath, UpdateRule,
};

/// Every rule with each of its variants.
#[derive(Debug, Clone, Copy)]
enum Rule {
    Sgd(SgdConfig),
    Adam(AdamConfig),
    RmsProp(RmsPropConfig),
    Adagrad(AdagradConfig),
}

fn cases() -> Vec<(&'static str, Rule)> {
    let sgd = SgdConfig { lr: 0.05, ..SgdConfig::default() };
    let adam = AdamConfig { lr: 0.01, ..AdamConfig::default() };
    let rms = RmsPropConfig { lr: 0.005, ..RmsPropConfig::default() };
    let adagrad = AdagradConfig { lr: 0.05, ..AdagradConfig::default() };
    vec![
        ("sgd", Rule::Sgd(sgd)),
        ("sgd_weight_decay", Rule::Sgd(SgdConfig { weight_decay: 0.01, ..sgd })),
        ("sgd_momentum", Rule::Sgd(SgdConfig { momentum: 0.9, ..sgd })),
        ("sgd_momentum_dampening", Rule::Sgd(SgdConfig { momentum: 0.9, dampening: 0.3, weight_decay: 0.01, ..sgd })),
        ("sgd_nesterov", Rule::Sgd(SgdConfig { momentum: 0.9, nesterov: true, weight_decay: 0.01, ..sgd })),
        ("adam", Rule::Adam(adam)),
        ("adam_l2", Rule::Adam(AdamConfig { weight_decay: 0.05, ..adam })),
        ("adamw", Rule::Adam(AdamConfig { lr: 0.01, weight_decay: 0.1, ..AdamConfig::adamw() })),
        ("adam_amsgrad", Rule::Adam(AdamConfig { amsgrad: true, weight_decay: 0.05, ..adam })),
        ("adamw_amsgrad", Rule::Adam(AdamConfig { lr: 0.01, amsgrad: true, ..AdamConfig::adamw() })),
        ("rmsprop", Rule::RmsProp(rms)),
        ("rmsprop_weight_decay", Rule::RmsProp(RmsPropConfig { weight_decay: 0.01, ..rms })),
        ("rmsprop_momentum", Rule::RmsProp(RmsPropConfig { momentum: 0.9, ..rms })),
        ("rmsprop_centered", Rule::RmsProp(RmsPropConfig { centered: true, ..rms })),
        (
            "rmsprop_centered_momentum",
            Rule::RmsProp(RmsPropConfig { centered: true, momentum: 0.8, weight_decay: 0.01, ..rms }),
        ),
        ("adagrad", Rule::Adagrad(adagrad)),
        (
            "adagrad_decay_accumulator",
            Rule::Adagrad(AdagradConfig {
                lr_decay: 0.01,
                weight_decay: 0.01,
                initial_accumulator_value: 0.1,
                ..adagrad
            }),
        ),
    ]
}

/// The base learning rate a case starts from (schedules scale from it).
fn base_lr(rule: Rule) -> f64 {
    match rule {
        Rule::Sgd(c) => c.lr,
        Rule::Adam(c) => c.lr,
        Rule::RmsProp(c) => c.lr,
        Rule::Adagrad(c) => c.lr,
    }
}

/// The optimizer over `groups` on `path`, and the names of its parameters on tensor ops.
fn build(rule: Rule, groups: Vec<ParamGroup>, path: UpdatePath) -> (Box<dyn Optimizer>, Vec<String>) {
    fn boxed<R: UpdateRule>(g: Vec<ParamGroup>, r: R, path: UpdatePath) -> (Box<dyn Optimizer>, Vec<String>) {
        let opt = FusedOptimizer::with_update_path(g, r, path).unwrap();
        assert_eq!(opt.update_path(), path);
        let on_tensors = opt.tensor_op_params().into_iter().map(String::from).collect();
        (Box::new(opt), on_tensors)
    }
    match rule {
        Rule::Sgd(c) => boxed::<SgdConfig>(groups, c, path),
        Rule::Adam(c) => boxed::<AdamConfig>(groups, c, path),
        Rule::RmsProp(c) => boxed::<RmsPropConfig>(groups, c, path),
        Rule::Adagrad(c) => boxed::<AdagradConfig>(groups, c, path),
    }
}

/// Parameter names and shapes: a matrix, a vector, a 3-d block and a scalar.
const SHAPES: [(&str, &[usize]); 4] =
    [("head.weight", &[5, 3]), ("head.bias", &[7]), ("conv.weight", &[2, 3, 4]), ("scale", &[])];

/// Deterministic pseudo-random numbers in [-1, 1): element `i` of parameter `param` at `step`
/// (splitmix64 of the three), so any run can regenerate any step's gradient.
fn noise(step: usize, param: usize, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let mut z = (step as u64) << 40 ^ (param as u64) << 32 ^ i as u64;
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

/// One run's parameters (the same starting values on every run).
struct Params {
    vars: Vec<(String, Var)>,
}

impl Params {
    fn new(dtype: DType) -> Self {
        let vars = SHAPES
            .iter()
            .enumerate()
            .map(|(j, (name, shape))| {
                let n = shape.iter().product();
                let t = Tensor::from_vec(noise(usize::MAX >> 24, j, n), *shape, &Device::Cpu).unwrap();
                (name.to_string(), Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap())
            })
            .collect();
        Self { vars }
    }

    /// `head.*` in a group with 3x the base learning rate `lr`, its own weight decay and
    /// momentum; the rest in the default group.
    fn groups(&self, lr: f64) -> Vec<ParamGroup> {
        let (head, rest) = self.vars.iter().cloned().partition(|(n, _)| n.starts_with("head."));
        let options = GroupOptions { lr: Some(3.0 * lr), weight_decay: Some(0.02), momentum: Some(0.8), frozen: false };
        vec![
            ParamGroup { name: "head".into(), params: head, options },
            ParamGroup { name: "default".into(), params: rest, options: GroupOptions::default() },
        ]
    }

    /// Gradients of `step`: noise plus a pull of each parameter toward 0 (so parameters stay
    /// bounded and each path's parameters feed back into its own gradients). `scale` has a
    /// gradient on even steps only, so the parameters' step counts differ.
    fn grads(&self, step: usize) -> GradStore {
        let mut grads = GradStore::default();
        for (j, (name, var)) in self.vars.iter().enumerate() {
            if name == "scale" && step % 2 == 1 {
                continue;
            }
            let n = noise(step, j, var.elem_count());
            let n = Tensor::from_vec(n, var.shape(), var.device()).unwrap().to_dtype(var.dtype()).unwrap();
            grads.insert(var, (n + var.as_tensor().affine(0.5, 0.0).unwrap()).unwrap());
        }
        grads
    }

    fn set(&self, from: &Params) {
        for ((_, v), (_, w)) in self.vars.iter().zip(&from.vars) {
            v.set(w.as_tensor()).unwrap();
        }
    }
}

/// The schedule every case runs under: the constructed learning rates for 30 steps, half the
/// base rate for 30, then one-cycle (learning rate and momentum every step) for the last 40.
fn schedule(step: usize, base: f64, opt: &mut dyn Optimizer) {
    if step == 30 {
        opt.set_learning_rate(base * 0.5);
    } else if step >= 60 {
        OneCycle::new(base, 40).apply(step - 60, opt);
    }
}

/// Every value of the tensor, widened to f64.
fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

/// Largest relative difference `|a - b| / max(|a|, |b|)` (0 where both are equal).
fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| if x == y { 0.0 } else { (x - y).abs() / x.abs().max(y.abs()) }).fold(0.0, f64::max)
}

/// Largest relative difference over the parameters and over every state buffer; the states
/// must hold the same buffers, shapes and float types.
fn difference(a: (&Params, &dyn Optimizer), b: (&Params, &dyn Optimizer), what: &str) -> f64 {
    let mut worst = 0.0f64;
    for ((name, v), (_, w)) in a.0.vars.iter().zip(&b.0.vars) {
        worst = worst.max(max_rel(&values(v.as_tensor()), &values(w.as_tensor())));
        assert!(worst.is_finite(), "{what}: {name} is not finite");
    }
    let (sa, sb) = (a.1.state().unwrap(), b.1.state().unwrap());
    assert_eq!(sa.step, sb.step, "{what}");
    assert_eq!(sa.meta, sb.meta, "{what}");
    assert_eq!(sa.buffers.keys().collect::<Vec<_>>(), sb.buffers.keys().collect::<Vec<_>>(), "{what}");
    for (key, ta) in &sa.buffers {
        let tb = &sb.buffers[key];
        assert_eq!((ta.dims(), ta.dtype()), (tb.dims(), tb.dtype()), "{what}: buffer {key}");
        worst = worst.max(max_rel(&values(ta), &values(tb)));
    }
    worst
}

/// Runs every case on both paths for 100 steps in `dtype`, asserting they agree within `tol`
/// at every step; returns the largest difference seen.
fn both_paths_agree(dtype: DType, tol: f64) -> f64 {
    let mut worst = 0.0f64;
    for (name, rule) in cases() {
        let base = base_lr(rule);
        let (fused, tensor) = (Params::new(dtype), Params::new(dtype));
        let (mut a, on_tensors) = build(rule, fused.groups(base), UpdatePath::Auto);
        assert!(on_tensors.is_empty(), "{name}: CPU parameters take the fused kernel by default");
        let (mut b, on_tensors) = build(rule, tensor.groups(base), UpdatePath::TensorOps);
        assert_eq!(on_tensors.len(), SHAPES.len(), "{name}: every parameter on tensor ops");
        let start = values(fused.vars[0].1.as_tensor());
        for step in 0..100 {
            schedule(step, base, a.as_mut());
            schedule(step, base, b.as_mut());
            assert_eq!(a.learning_rate(), b.learning_rate());
            a.step(&fused.grads(step)).unwrap();
            b.step(&tensor.grads(step)).unwrap();
            let d = difference((&fused, a.as_ref()), (&tensor, b.as_ref()), &format!("{name} {dtype:?} step {step}"));
            assert!(d <= tol, "{name} {dtype:?}: step {step}: paths differ by {d:e} (relative)");
            worst = worst.max(d);
        }
        // The comparison means something only if the parameters moved.
        let end = values(fused.vars[0].1.as_tensor());
        assert!(max_rel(&start, &end) > 1e-3, "{name}: parameters barely moved");
        assert_eq!(a.state().unwrap().step, 100);
    }
    worst
}

#[test]
fn tensor_ops_follow_the_fused_kernel_for_every_rule_in_f64() {
    let worst = both_paths_agree(DType::F64, 1e-6);
    eprintln!("f64: largest relative difference between the paths over 100 steps: {worst:e}");
}

#[test]
fn tensor_ops_follow_the_fused_kernel_for_every_rule_in_f32() {
    let worst = both_paths_agree(DType::F32, 1e-4);
    eprintln!("f32: largest relative difference between the paths over 100 steps: {worst:e}");
}

/// Runs `rule` for 100 steps on `first` then (after step 50) on `second`, handing over through
/// a saved state file and fresh parameters, as a new process would; returns the final
/// parameters and optimizer.
fn resumed(rule: Rule, first: UpdatePath, second: UpdatePath, dir: &std::path::Path) -> (Params, Box<dyn Optimizer>) {
    let base = base_lr(rule);
    let p = Params::new(DType::F64);
    let (mut opt, _) = build(rule, p.groups(base), first);
    for step in 0..50 {
        schedule(step, base, opt.as_mut());
        opt.step(&p.grads(step)).unwrap();
    }
    let path = dir.join("state.safetensors");
    opt.state().unwrap().save(&path).unwrap();
    drop(opt);

    let q = Params::new(DType::F64);
    q.set(&p);
    let (mut opt, _) = build(rule, q.groups(base), second);
    let state = OptimizerState::load(&path, &Device::Cpu).unwrap();
    assert_eq!(state.step, 50);
    opt.load_state(state).unwrap();
    for step in 50..100 {
        schedule(step, base, opt.as_mut());
        opt.step(&q.grads(step)).unwrap();
    }
    (q, opt)
}

#[test]
fn state_saved_on_either_path_resumes_on_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let mut worst = 0.0f64;
    for (name, rule) in cases() {
        let base = base_lr(rule);
        for (first, second) in [(UpdatePath::Auto, UpdatePath::TensorOps), (UpdatePath::TensorOps, UpdatePath::Auto)] {
            let straight = Params::new(DType::F64);
            let (mut opt, _) = build(rule, straight.groups(base), first);
            for step in 0..100 {
                schedule(step, base_lr(rule), opt.as_mut());
                opt.step(&straight.grads(step)).unwrap();
            }
            let (q, resumed) = resumed(rule, first, second, dir.path());
            let what = format!("{name}: saved on {first:?}, resumed on {second:?}");
            let d = difference((&straight, opt.as_ref()), (&q, resumed.as_ref()), &what);
            assert!(d <= 1e-6, "{what}: differs by {d:e} (relative) from the run that did not stop");
            worst = worst.max(d);
        }
    }
    eprintln!("resumed across paths: largest relative difference: {worst:e}");
}

/// Runs `rule` for 100 steps, switching to tensor ops at step 40 and back at step 70, against
/// a run on the fused kernel throughout.
fn switching<R: UpdateRule>(name: &str, rule: R) {
    let base = rule.defaults().lr;
    let straight = Params::new(DType::F64);
    let mut a = FusedOptimizer::with_groups(straight.groups(base), rule.clone()).unwrap();
    let switched = Params::new(DType::F64);
    let mut b = FusedOptimizer::with_groups(switched.groups(base), rule).unwrap();
    for step in 0..100 {
        if step == 40 {
            b.set_update_path(UpdatePath::TensorOps).unwrap();
            assert_eq!(b.tensor_op_params().len(), SHAPES.len());
        }
        if step == 70 {
            b.set_update_path(UpdatePath::Auto).unwrap();
            assert!(b.tensor_op_params().is_empty());
        }
        schedule(step, base, &mut a);
        schedule(step, base, &mut b);
        a.step(&straight.grads(step)).unwrap();
        b.step(&switched.grads(step)).unwrap();
    }
    let d = difference((&straight, &a), (&switched, &b), name);
    assert!(d <= 1e-6, "{name}: switching paths changed the run by {d:e}");
}

#[test]
fn switching_path_mid_run_keeps_the_state() {
    for (name, rule) in cases() {
        match rule {
            Rule::Sgd(c) => switching(name, c),
            Rule::Adam(c) => switching(name, c),
            Rule::RmsProp(c) => switching(name, c),
            Rule::Adagrad(c) => switching(name, c),
        }
    }
}

#[test]
fn tensor_path_refuses_half_precision_and_duplicate_names_as_the_fused_one_does() {
    for dtype in [DType::F16, DType::BF16] {
        let v = Var::from_tensor(&Tensor::zeros(3, dtype, &Device::Cpu).unwrap()).unwrap();
        for path in [UpdatePath::Auto, UpdatePath::TensorOps] {
            let err =
                Sgd::with_update_path(vec![ParamGroup::all(vec![("w".into(), v.clone())])], SgdConfig::default(), path)
                    .unwrap_err();
            assert!(
                matches!(&err, Error::UnsupportedParameter { name, detail } if name == "w" && detail.contains("f32 or f64")),
                "{path:?}: {err}"
            );
        }
    }
    let w = Var::new(&[1f64], &Device::Cpu).unwrap();
    let twice = vec![ParamGroup::all(vec![("w".into(), w.clone()), ("w".into(), w)])];
    let err = RmsProp::with_update_path(twice, RmsPropConfig::default(), UpdatePath::TensorOps).unwrap_err();
    assert!(matches!(err, Error::DuplicateParameter { .. }), "{err}");
}

#[test]
fn tensor_path_keeps_no_graph_and_leaves_parameters_without_gradients_alone() {
    // A parameter without a gradient neither moves nor counts a step, on either path.
    let p = Params::new(DType::F64);
    let mut opt = Adagrad::with_update_path(p.groups(0.01), AdagradConfig::default(), UpdatePath::TensorOps).unwrap();
    let scale = values(p.vars[3].1.as_tensor());
    opt.step(&p.grads(1)).unwrap();
    assert_eq!(values(p.vars[3].1.as_tensor()), scale, "scale had no gradient at step 1");
    let state = opt.state().unwrap();
    assert_eq!(values(&state.buffers["scale.step"]), vec![0.0]);
    assert_eq!(values(&state.buffers["head.bias.step"]), vec![1.0]);
    // The parameters stay variables and the state holds no graph back to them.
    for (name, var) in &p.vars {
        assert!(var.as_tensor().is_variable(), "{name}");
    }
    for (key, t) in &state.buffers {
        assert!(!t.track_op(), "{key} holds a graph");
    }
}

#[test]
fn tensor_path_matches_pytorch_for_100_steps() {
    // The PyTorch fixture of tests/optimizers.rs, on tensor ops, to the same 1e-9.
    let f = common::fixture();
    for (name, case) in f["cases"].as_object().unwrap() {
        let p = common::problem(&f);
        let kind = case["optimizer"].as_str().unwrap();
        let mut opt = common::build_on(kind, &case["config"], &p, UpdatePath::TensorOps);
        let mut step = 0;
        for record in case["trajectory"].as_array().unwrap() {
            while step < record["step"].as_u64().unwrap() {
                p.step(opt.as_mut());
                step += 1;
            }
            let (w, b) = p.values();
            let rel = |ours: &[f64], theirs: &[f64]| {
                ours.iter().zip(theirs).map(|(a, b)| (a - b).abs() / b.abs().max(1e-6)).fold(0.0, f64::max)
            };
            let err = rel(&w, &common::floats(&record["w"])).max(rel(&b, &common::floats(&record["b"])));
            assert!(err < 1e-9, "{name}: step {step}: max relative error {err}");
        }
        assert_eq!(step, 100, "{name}");
    }
}
