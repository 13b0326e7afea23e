//! ember's batch norm kernels: equal to the candle-op reference (forward, statistics and every
//! gradient; training and evaluation mode; with and without weight, bias and a fused
//! activation; odd sizes, batch 1; f32 to 1e-5 relative, f64 tighter) and to finite
//! differences.

use candle_core::{DType, Device, Tensor, Var};
use ember_kernels::gradcheck::check_gradients;
use ember_kernels::{
    add_activate, batch_norm_eval, batch_norm_train, batch_norm_train_add, batch_norm_train_max_pool,
    candle_batch_norm_eval, candle_batch_norm_train, max_pool2d, FusedActivation, Pool2dParams,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

mod common;
use common::{max_rel_diff, uniform as random};

const ACTS: [FusedActivation; 3] = [FusedActivation::Identity, FusedActivation::Relu, FusedActivation::Relu6];

/// Shapes covering ranks 2 to 4, one channel and odd channel counts, batch 1 with positions,
/// positions 1 with a batch, and a channel large enough to span several rayon tasks.
fn shapes() -> Vec<Vec<usize>> {
    vec![
        vec![1, 3, 7],
        vec![2, 3, 7],
        vec![5, 4],
        vec![1, 1, 9],
        vec![3, 5, 3, 3],
        vec![1, 6, 5, 7],
        vec![4, 3, 1],
        vec![2, 17, 11, 13],
        vec![3, 2, 4096],
    ]
}

struct Operands {
    x: Var,
    w: Var,
    b: Var,
    r: Tensor,
}

fn operands(shape: &[usize], rng: &mut StdRng, dtype: DType) -> Operands {
    let c = shape[1];
    // An offset per tensor so the statistics are not near 0 and 1 already.
    let x = random(shape, rng, dtype, -2.0, 2.0).affine(3.0, 1.5).unwrap();
    Operands {
        x: Var::from_tensor(&x).unwrap(),
        w: Var::from_tensor(&(random(&[c], rng, dtype, -1.0, 1.0) * 3.0).unwrap()).unwrap(),
        b: Var::from_tensor(&random(&[c], rng, dtype, -2.0, 2.0)).unwrap(),
        r: random(shape, rng, dtype, -1.0, 1.0),
    }
}

/// Compares two outputs and the gradients of `Σ output·r` with respect to the operands.
fn assert_same(what: &str, ops: &Operands, ours: &Tensor, theirs: &Tensor, vars: &[&Var], tol: f64) {
    let d = max_rel_diff(ours, theirs);
    assert!(d < tol, "{what}: forward differs by {d}");
    let g1 = (ours * &ops.r).unwrap().sum_all().unwrap().backward().unwrap();
    let g2 = (theirs * &ops.r).unwrap().sum_all().unwrap().backward().unwrap();
    for (k, v) in vars.iter().enumerate() {
        let (a, b) = (g1.get(v), g2.get(v));
        let (Some(a), Some(b)) = (a, b) else {
            panic!("{what}: gradient {k} missing: {:?} {:?}", a.is_some(), b.is_some())
        };
        let d = max_rel_diff(a, b);
        assert!(d < tol, "{what}: gradient {k} differs by {d}");
    }
}

/// One case of the sweeps against candle's ops: random operands, the activation, and which of
/// weight and bias the op gets.
struct Case {
    shape: Vec<usize>,
    dtype: DType,
    tol: f64,
    act: FusedActivation,
    ops: Operands,
    use_w: bool,
    use_b: bool,
}

impl Case {
    fn weight(&self) -> Option<&Tensor> {
        self.use_w.then_some(self.ops.w.as_tensor())
    }

    fn bias(&self) -> Option<&Tensor> {
        self.use_b.then_some(self.ops.b.as_tensor())
    }

    /// The variables that get gradients: the input, and the weight and bias when used.
    fn vars(&self) -> Vec<&Var> {
        let mut vars = vec![&self.ops.x];
        vars.extend(self.use_w.then_some(&self.ops.w));
        vars.extend(self.use_b.then_some(&self.ops.b));
        vars
    }

    fn what(&self) -> String {
        format!("{:?} {:?} {:?} weight {} bias {}", self.shape, self.dtype, self.act, self.use_w, self.use_b)
    }
}

/// Runs `check` on every shape, dtype (f64 to `tols[0]`, f32 to `tols[1]`) and activation, with
/// every combination of weight and bias over the cases; `check` gets the case's index among the
/// activations and the RNG, to draw more.
fn for_each_case(seed: u64, tols: [f64; 2], mut check: impl FnMut(&Case, usize, &mut StdRng)) {
    let mut rng = StdRng::seed_from_u64(seed);
    for (s, shape) in shapes().into_iter().enumerate() {
        for (dtype, tol) in [(DType::F64, tols[0]), (DType::F32, tols[1])] {
            for (case, act) in ACTS.into_iter().enumerate() {
                let ops = operands(&shape, &mut rng, dtype);
                let (use_w, use_b) = [(true, true), (false, true), (true, false), (false, false)][(s + case) % 4];
                let c = Case { shape: shape.clone(), dtype, tol, act, ops, use_w, use_b };
                check(&c, case, &mut rng);
            }
        }
    }
}

#[test]
fn training_kernel_matches_candle_ops_forward_statistics_and_gradients() {
    for_each_case(11, [1e-10, 1e-5], |c, case, _| {
        let eps = [1e-5, 1e-3][case % 2];
        let (ours, stats) = batch_norm_train(&c.ops.x, c.weight(), c.bias(), eps, c.act).unwrap();
        let (theirs, reference) = candle_batch_norm_train(&c.ops.x, c.weight(), c.bias(), eps, c.act).unwrap();
        let what = c.what();
        assert_eq!(stats.mean.dims(), [c.shape[1]]);
        assert!(!stats.mean.track_op() && !stats.var.track_op(), "{what}: statistics carry a graph");
        assert!(max_rel_diff(&stats.mean, &reference.mean) < c.tol, "{what}: mean");
        assert!(max_rel_diff(&stats.var, &reference.var) < c.tol, "{what}: variance");
        assert_same(&what, &c.ops, &ours, &theirs, &c.vars(), c.tol);
    });
}

#[test]
fn training_kernel_with_max_pool_equals_batch_norm_then_pool() {
    // The reference is ember's unfused pair (each checked against candle above and in
    // max_pool.rs): both normalise with the same arithmetic, so even ties pool alike.
    let pools = [
        Pool2dParams::square_window(3, 2, 1),
        Pool2dParams::square(2),
        Pool2dParams::square_window(3, 1, 1),
        Pool2dParams { kernel: (2, 3), stride: (1, 2), padding: (0, 1) },
    ];
    let mut checked = 0;
    for_each_case(16, [1e-12, 1e-6], |c, case, _| {
        let &[_, _, h, w] = &c.shape[..] else { return };
        for pool in pools {
            if pool.output_size(h, w).is_err() {
                continue;
            }
            let (ours, stats) = batch_norm_train_max_pool(&c.ops.x, c.weight(), c.bias(), 1e-5, c.act, pool).unwrap();
            let (full, reference) = batch_norm_train(&c.ops.x, c.weight(), c.bias(), 1e-5, c.act).unwrap();
            let theirs = max_pool2d(&full, pool).unwrap();
            let what = format!("{} {pool:?} (case {case})", c.what());
            assert_eq!(ours.dims(), theirs.dims(), "{what}");
            assert!(max_rel_diff(&stats.mean, &reference.mean) < c.tol, "{what}: mean");
            assert!(max_rel_diff(&stats.var, &reference.var) < c.tol, "{what}: variance");
            let r = random(ours.dims(), &mut StdRng::seed_from_u64(case as u64), c.dtype, -1.0, 1.0);
            let ops = Operands { x: c.ops.x.clone(), w: c.ops.w.clone(), b: c.ops.b.clone(), r };
            assert_same(&what, &ops, &ours, &theirs, &c.vars(), c.tol);
            checked += 1;
        }
    });
    assert!(checked > 40, "only {checked} pooled cases");
    // Finite differences through the pool (f64, values far from ties).
    let mut rng = StdRng::seed_from_u64(17);
    let x = random(&[2, 3, 6, 5], &mut rng, DType::F64, -2.0, 2.0);
    let (wt, bs) = (random(&[3], &mut rng, DType::F64, 0.5, 2.0), random(&[3], &mut rng, DType::F64, -0.5, 0.5));
    let pool = Pool2dParams::square_window(3, 2, 1);
    let r = random(&[2, 3, 3, 3], &mut rng, DType::F64, -1.0, 1.0);
    for act in ACTS {
        let fd = check_gradients(
            |t| (batch_norm_train_max_pool(&t[0], Some(&t[1]), Some(&t[2]), 1e-5, act, pool)?.0 * &r)?.sum_all(),
            &[x.clone(), wt.clone(), bs.clone()],
            1e-6,
        )
        .unwrap();
        assert!(fd.max_rel_error < 1e-5, "{act:?}: {fd:?}");
    }
}

#[test]
fn training_kernel_with_residual_equals_batch_norm_then_add_activate() {
    // The reference is ember's unfused pair (each checked against candle's ops elsewhere).
    for_each_case(18, [1e-12, 1e-6], |c, case, rng| {
        let shortcut = Var::from_tensor(&random(&c.shape, rng, c.dtype, -2.0, 2.0)).unwrap();
        let (ours, stats) = batch_norm_train_add(&c.ops.x, &shortcut, c.weight(), c.bias(), 1e-5, c.act).unwrap();
        let (normalised, reference) =
            batch_norm_train(&c.ops.x, c.weight(), c.bias(), 1e-5, FusedActivation::Identity).unwrap();
        let theirs = add_activate(&normalised, &shortcut, c.act).unwrap();
        let what = format!("{} with a shortcut (case {case})", c.what());
        assert!(max_rel_diff(&stats.mean, &reference.mean) < c.tol, "{what}: mean");
        assert!(max_rel_diff(&stats.var, &reference.var) < c.tol, "{what}: variance");
        let mut vars = c.vars();
        vars.push(&shortcut);
        assert_same(&what, &c.ops, &ours, &theirs, &vars, c.tol);
    });
    let mut rng = StdRng::seed_from_u64(19);
    let shape = [2, 3, 4, 3];
    let x = random(&shape, &mut rng, DType::F64, -2.0, 2.0);
    let sc = random(&shape, &mut rng, DType::F64, -1.0, 1.0);
    let (wt, bs) = (random(&[3], &mut rng, DType::F64, 0.5, 2.0), random(&[3], &mut rng, DType::F64, -0.5, 0.5));
    let r = random(&shape, &mut rng, DType::F64, -1.0, 1.0);
    for act in ACTS {
        let fd = check_gradients(
            |t| (batch_norm_train_add(&t[0], &t[1], Some(&t[2]), Some(&t[3]), 1e-5, act)?.0 * &r)?.sum_all(),
            &[x.clone(), sc.clone(), wt.clone(), bs.clone()],
            1e-6,
        )
        .unwrap();
        assert!(fd.max_rel_error < 1e-5, "{act:?}: {fd:?}");
    }
    let wrong = random(&[2, 3, 4, 2], &mut rng, DType::F64, -1.0, 1.0);
    let err = batch_norm_train_add(&x, &wrong, None, None, 1e-5, FusedActivation::Relu).unwrap_err();
    assert!(err.to_string().contains("shortcut of shape [2, 3, 4, 2]"), "{err}");
}

#[test]
fn evaluation_kernel_matches_candle_ops_forward_and_gradients() {
    for_each_case(12, [1e-12, 1e-5], |c, _, rng| {
        let ch = c.shape[1];
        let mean = random(&[ch], rng, c.dtype, -1.0, 3.0);
        let var = random(&[ch], rng, c.dtype, 0.05, 4.0);
        let ours = batch_norm_eval(&c.ops.x, &mean, &var, c.weight(), c.bias(), 1e-3, c.act).unwrap();
        let theirs = candle_batch_norm_eval(&c.ops.x, &mean, &var, c.weight(), c.bias(), 1e-3, c.act).unwrap();
        assert_same(&c.what(), &c.ops, &ours, &theirs, &c.vars(), c.tol);
    });
}

#[test]
fn running_statistics_that_are_variables_get_no_gradient() {
    let mut rng = StdRng::seed_from_u64(13);
    let ops = operands(&[2, 3, 7], &mut rng, DType::F32);
    let mean = Var::from_tensor(&random(&[3], &mut rng, DType::F32, -1.0, 1.0)).unwrap();
    let var = Var::from_tensor(&random(&[3], &mut rng, DType::F32, 0.5, 2.0)).unwrap();
    let y = batch_norm_eval(&ops.x, &mean, &var, Some(&ops.w), Some(&ops.b), 1e-5, FusedActivation::Identity).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&ops.x).is_some() && grads.get(&ops.w).is_some() && grads.get(&ops.b).is_some());
    assert!(grads.get(&mean).is_none() && grads.get(&var).is_none());
}

#[test]
fn kernels_pass_finite_differences() {
    let mut rng = StdRng::seed_from_u64(14);
    for shape in [vec![1, 3, 7], vec![2, 3, 5], vec![6, 2], vec![2, 2, 3, 3]] {
        let c = shape[1];
        let x = (random(&shape, &mut rng, DType::F64, -2.0, 2.0) + 0.7).unwrap();
        let w = random(&[c], &mut rng, DType::F64, 0.5, 2.0);
        let b = random(&[c], &mut rng, DType::F64, -0.5, 0.5);
        let r = random(&shape, &mut rng, DType::F64, -1.0, 1.0);
        let mean = random(&[c], &mut rng, DType::F64, -0.5, 0.5);
        let var = random(&[c], &mut rng, DType::F64, 0.5, 2.0);
        for act in ACTS {
            let train = check_gradients(
                |t| (batch_norm_train(&t[0], Some(&t[1]), Some(&t[2]), 1e-5, act)?.0 * &r)?.sum_all(),
                &[x.clone(), w.clone(), b.clone()],
                1e-6,
            )
            .unwrap();
            assert!(train.max_rel_error < 1e-5, "{shape:?} {act:?} train: {train:?}");
            let eval = check_gradients(
                |t| (batch_norm_eval(&t[0], &mean, &var, Some(&t[1]), Some(&t[2]), 1e-5, act)? * &r)?.sum_all(),
                &[x.clone(), w.clone(), b.clone()],
                1e-6,
            )
            .unwrap();
            assert!(eval.max_rel_error < 1e-6, "{shape:?} {act:?} eval: {eval:?}");
        }
        let plain = check_gradients(
            |t| (batch_norm_train(&t[0], None, None, 1e-5, FusedActivation::Identity)?.0 * &r)?.sum_all(),
            std::slice::from_ref(&x),
            1e-6,
        )
        .unwrap();
        assert!(plain.max_rel_error < 1e-5, "{shape:?} without weight and bias: {plain:?}");
    }
}

#[test]
fn f32_statistics_survive_a_large_mean() {
    // One pass of Σx² - (Σx)²/n in f32 would lose every digit of this variance.
    let mut rng = StdRng::seed_from_u64(15);
    let x64 = random(&[4, 2, 999], &mut rng, DType::F64, -1.0, 1.0).affine(0.01, 1000.0).unwrap();
    let x32 = x64.to_dtype(DType::F32).unwrap();
    let exact =
        candle_batch_norm_train(&x32.to_dtype(DType::F64).unwrap(), None, None, 1e-5, FusedActivation::Identity)
            .unwrap();
    let (y, stats) = batch_norm_train(&x32, None, None, 1e-5, FusedActivation::Identity).unwrap();
    assert!(max_rel_diff(&stats.mean, &exact.1.mean) < 1e-7);
    assert!(max_rel_diff(&stats.var, &exact.1.var) < 1e-5, "{}", max_rel_diff(&stats.var, &exact.1.var));
    // The normalised output keeps f32's precision too: x - mean is not allowed to lose the
    // digits the large mean takes.
    let d = max_rel_diff(&y, &exact.0);
    assert!(d < 1e-5, "output differs by {d}");
}

#[test]
fn other_dtypes_take_candle_ops_and_agree() {
    let mut rng = StdRng::seed_from_u64(16);
    let x = random(&[2, 3, 4, 4], &mut rng, DType::F32, -2.0, 2.0);
    let (y32, _) = batch_norm_train(&x, None, None, 1e-5, FusedActivation::Relu).unwrap();
    let (y16, stats) =
        batch_norm_train(&x.to_dtype(DType::BF16).unwrap(), None, None, 1e-5, FusedActivation::Relu).unwrap();
    assert_eq!(y16.dtype(), DType::BF16);
    assert_eq!(stats.mean.dtype(), DType::BF16);
    assert!(max_rel_diff(&y16, &y32) < 2e-2);
    // The fused training ops fall back to the two steps on such dtypes, with the same results.
    let pool = Pool2dParams::square_window(3, 2, 1);
    let (p32, _) = batch_norm_train_max_pool(&x, None, None, 1e-5, FusedActivation::Relu, pool).unwrap();
    let (p16, _) =
        batch_norm_train_max_pool(&x.to_dtype(DType::BF16).unwrap(), None, None, 1e-5, FusedActivation::Relu, pool)
            .unwrap();
    assert_eq!((p16.dtype(), p16.dims()), (DType::BF16, &[2, 3, 2, 2][..]));
    assert!(max_rel_diff(&p16, &p32) < 2e-2);
    let sc = random(&[2, 3, 4, 4], &mut rng, DType::F32, -1.0, 1.0);
    let (a32, _) = batch_norm_train_add(&x, &sc, None, None, 1e-5, FusedActivation::Relu).unwrap();
    let bf16 = |t: &Tensor| t.to_dtype(DType::BF16).unwrap();
    let (a16, _) = batch_norm_train_add(&bf16(&x), &bf16(&sc), None, None, 1e-5, FusedActivation::Relu).unwrap();
    assert_eq!(a16.dtype(), DType::BF16);
    assert!(max_rel_diff(&a16, &a32) < 2e-2);
}

#[test]
fn non_contiguous_input_is_normalised_as_its_values() {
    let mut rng = StdRng::seed_from_u64(17);
    let x = random(&[5, 3, 4], &mut rng, DType::F32, -2.0, 2.0);
    let t = x.transpose(0, 2).unwrap(); // (4, 3, 5), strided
    let (ours, _) = batch_norm_train(&t, None, None, 1e-5, FusedActivation::Identity).unwrap();
    let (theirs, _) =
        candle_batch_norm_train(&t.contiguous().unwrap(), None, None, 1e-5, FusedActivation::Identity).unwrap();
    assert!(max_rel_diff(&ours, &theirs) < 1e-5);
}

#[test]
fn no_grad_output_records_nothing() {
    let mut rng = StdRng::seed_from_u64(18);
    let ops = operands(&[2, 3, 4], &mut rng, DType::F32);
    let (tracked, _) = batch_norm_train(&ops.x, Some(&ops.w), Some(&ops.b), 1e-5, FusedActivation::Identity).unwrap();
    assert!(tracked.track_op());
    let _guard = ember_kernels::no_grad();
    let (y, _) = batch_norm_train(&ops.x, Some(&ops.w), Some(&ops.b), 1e-5, FusedActivation::Identity).unwrap();
    assert!(!y.track_op());
}

#[test]
fn shape_errors_name_the_shapes() {
    let x = Tensor::zeros((2, 3, 4), DType::F32, &Device::Cpu).unwrap();
    let w = Tensor::ones(4, DType::F32, &Device::Cpu).unwrap();
    let err = batch_norm_train(&x, Some(&w), None, 1e-5, FusedActivation::Identity).unwrap_err().to_string();
    assert!(err.contains("[4]") && err.contains("[2, 3, 4]") && err.contains("(3,)"), "{err}");
    let err = batch_norm_train(
        &Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        None,
        None,
        1e-5,
        FusedActivation::Identity,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("[3]"), "{err}");
    // The pooled op: a rank that is not 4, and a pool wider than the padded plane.
    let pool = Pool2dParams::square_window(3, 2, 0);
    let err = batch_norm_train_max_pool(&x, None, None, 1e-5, FusedActivation::Relu, pool).unwrap_err().to_string();
    assert!(err.contains("(batch, channels, height, width)") && err.contains("[2, 3, 4]"), "{err}");
    let small = Tensor::zeros((2, 3, 2, 2), DType::F32, &Device::Cpu).unwrap();
    assert!(batch_norm_train_max_pool(&small, None, None, 1e-5, FusedActivation::Relu, pool).is_err());
}
