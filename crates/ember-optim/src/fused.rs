//! The engine every optimizer shares: parameter groups, per-parameter state, and one fused,
//! in-place, allocation-free update pass per CPU parameter, or the same update in candle tensor
//! ops for a parameter on any other device.
//!
//! An [`UpdateRule`] says how one element moves (`p`, its gradient `g`, its state slots); the
//! engine runs that rule over the parameter's storage in place (a candle `InplaceOp2`), in
//! parallel for large tensors. State lives in plain vectors, interleaved per element
//! (`[m0, v0, m1, v1, ...]`), so an update touches each cache line once.
//!
//! The in-place op has a CPU kernel only, so a parameter elsewhere (CUDA, Metal) takes the
//! [`UpdatePath::TensorOps`] path: the rule's [`UpdateRule::apply_tensors`], the same update
//! written with candle tensor ops, with the state as one device tensor per slot and the result
//! written back with `Var::set`. Both paths read the same per-step coefficients, save the same
//! buffers and load each other's state.

use std::cell::RefCell;
use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Device, InplaceOp2, Layout, Shape, Tensor, Var, WithDType};
use rayon::prelude::*;

use crate::check::{check, Range::NonNegative};
use crate::param_groups::ParamGroup;
use crate::real::Real;
use crate::{Error, GroupRecord, Optimizer, OptimizerMeta, OptimizerState, Result};

/// Hyper-parameters in force for one parameter at one step (its group's, after overrides).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hyper {
    /// Learning rate.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Momentum / β1.
    pub momentum: f64,
}

/// The hyper-parameters every rule has, as it is configured: parameter groups override them,
/// and schedules move the learning rate and momentum from there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Defaults {
    /// Learning rate.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Momentum (Adam's β1); `None` for a rule without one, or with it off (SGD and RMSprop
    /// with momentum 0 keep no momentum buffer for a schedule to move).
    pub momentum: Option<f64>,
}

impl Defaults {
    /// The defaults of a rule whose momentum 0 switches momentum off (SGD, RMSprop): no
    /// momentum buffer, and nothing for a schedule to cycle.
    pub fn switchable_momentum(lr: f64, weight_decay: f64, momentum: f64) -> Self {
        Self { lr, weight_decay, momentum: (momentum != 0.0).then_some(momentum) }
    }
}

/// The element-wise update of one optimizer. A rule says how one element moves and what its
/// settings are; [`FusedOptimizer`] does everything else (groups, schedules, state, saving).
pub trait UpdateRule: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// Name stored in saved state (`"adam"`, `"sgd"`, ...).
    const NAME: &'static str;
    /// Names of the per-element state slots, in storage order (PyTorch's state keys).
    fn slot_names(&self) -> &'static [&'static str];
    /// Initial value of every state slot.
    fn initial_state(&self) -> f64 {
        0.0
    }
    /// The learning rate, weight decay and momentum the rule is configured with.
    fn defaults(&self) -> Defaults;
    /// Checks the rule's own hyper-parameters; [`UpdateRule::validate`] then checks the ones
    /// every rule has.
    fn validate_own(&self) -> Result<()>;
    /// Checks every hyper-parameter; the error names the first one out of range.
    fn validate(&self) -> Result<()> {
        self.validate_own()?;
        let shared = self.defaults();
        let momentum = shared.momentum.unwrap_or(0.0);
        let settings = [("lr", shared.lr), ("weight_decay", shared.weight_decay), ("momentum", momentum)];
        check(Self::NAME, &settings.map(|(setting, value)| (setting, value, NonNegative)))
    }
    /// The scalars [`UpdateRule::apply`] reads (learning rate, bias corrections, switches), one
    /// named field each, in the parameter's float type: computed in f64 once per parameter and
    /// step, then converted, so an update runs on ready values.
    type Coefficients<T: Real>: Copy + Send + Sync;
    /// The scalars [`UpdateRule::apply`] needs at `step` (1-based, this parameter's count).
    fn coefficients<T: Real>(&self, h: &Hyper, step: u64) -> Self::Coefficients<T>;
    /// Updates one element: parameter `p`, gradient `g`, state slots `s`.
    fn apply<T: Real>(c: &Self::Coefficients<T>, p: &mut T, g: T, s: &mut [T]);
    /// [`UpdateRule::apply`] over whole tensors in candle ops, so it runs on any device:
    /// parameter `p`, gradient `g` and state slots `s` (one tensor per slot, in
    /// [`UpdateRule::slot_names`] order, each shaped like `p`), all of one float type; returns
    /// the new parameter and the new slots, in the same order.
    ///
    /// The coefficients are the f64 ones; candle converts each scalar to the tensors' type as
    /// [`Real::of`] does, so written in the same order of operations the result equals
    /// [`UpdateRule::apply`]'s (`tests/tensor_path.rs` holds the two to it).
    fn apply_tensors(c: &Self::Coefficients<f64>, p: &Tensor, g: &Tensor, s: &[Tensor]) -> TensorUpdate;
}

/// What [`UpdateRule::apply_tensors`] returns: the new parameter and its new state slots.
pub type TensorUpdate = candle_core::Result<(Tensor, Vec<Tensor>)>;

/// `g + penalty·p`, the gradient with an L2 penalty, or `g` itself when there is none: no
/// kernel is spent on adding zeros on a GPU.
pub(crate) fn with_l2_penalty(g: &Tensor, p: &Tensor, penalty: f64) -> candle_core::Result<Tensor> {
    if penalty != 0.0 {
        g + p.affine(penalty, 0.0)?
    } else {
        Ok(g.clone())
    }
}

/// How a [`FusedOptimizer`] updates its parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpdatePath {
    /// The fused in-place kernel for CPU parameters, [`UpdatePath::TensorOps`] for parameters
    /// on any other device (the kernel runs on the CPU only), and for every parameter of an
    /// optimizer built under [`ember_kernels::with_portable_ops`] (the GPU's path, on the CPU).
    #[default]
    Auto,
    /// [`UpdateRule::apply_tensors`] for every parameter, the CPU's included: what a parameter
    /// on a GPU always gets, chosen on the CPU to check it against the fused kernel.
    TensorOps,
}

/// `t / x` for a scalar `x`, as a true division: candle's `t / x` multiplies by `1 / x`, which
/// can differ from the fused kernel's division in the last bit. The divisor is a one-element
/// tensor filled on the device (no copy from the host) and broadcast.
pub(crate) fn div_scalar(t: &Tensor, x: f64) -> candle_core::Result<Tensor> {
    t.broadcast_div(&filled(x, (), t.dtype(), t.device())?)
}

/// A tensor of `shape` holding `value` in `dtype`, converted as [`Real::of`] converts.
fn filled(value: f64, shape: impl Into<Shape>, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
    match dtype {
        DType::F32 => Tensor::full(value as f32, shape, device),
        DType::F64 => Tensor::full(value, shape, device),
        other => Tensor::full(value as f32, shape, device)?.to_dtype(other),
    }
}

/// Per-parameter state: interleaved by element for the fused kernel, one tensor per slot (on
/// the parameter's device) for the tensor-op path.
#[derive(Debug, Clone)]
enum SlotState {
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// Never updated in place (each step makes new tensors), so a saved state may share them.
    Tensors(Vec<Tensor>),
}

#[derive(Debug)]
struct Slot {
    name: String,
    var: Var,
    group: usize,
    state: SlotState,
    step: u64,
}

/// An optimizer made of an [`UpdateRule`] and the shared engine. Use it through its aliases
/// ([`crate::Adam`], [`crate::Sgd`], ...).
#[derive(Debug)]
pub struct FusedOptimizer<R: UpdateRule> {
    rule: R,
    /// The learning rate, weight decay and momentum in force: the rule's at construction, then
    /// with the learning rate and momentum a schedule (or a restored state) set.
    current: Defaults,
    /// The default learning rate at construction: group learning rates are kept as ratios to it.
    initial_lr: f64,
    groups: Vec<GroupRecord>,
    slots: Vec<Slot>,
    path: UpdatePath,
}

impl UpdatePath {
    /// Whether a parameter on `device` is updated with tensor ops.
    fn uses_tensor_ops(self, device: &Device) -> bool {
        self == Self::TensorOps || !device.is_cpu() || ember_kernels::portable_ops_forced()
    }
}

impl SlotState {
    /// `k` slots of `init` for parameter `name`, laid out for `path`.
    fn new(path: UpdatePath, name: &str, var: &Var, k: usize, init: f64) -> Result<Self> {
        let n = var.elem_count() * k;
        Ok(match var.dtype() {
            DType::F32 | DType::F64 if path.uses_tensor_ops(var.device()) => Self::Tensors(
                (0..k)
                    .map(|_| filled(init, var.shape(), var.dtype(), var.device()))
                    .collect::<candle_core::Result<_>>()?,
            ),
            DType::F32 => Self::F32(vec![init as f32; n]),
            DType::F64 => Self::F64(vec![init; n]),
            other => {
                return Err(Error::UnsupportedParameter {
                    name: name.to_string(),
                    detail: format!("dtype {other:?} (f32 or f64 needed)"),
                })
            }
        })
    }

    /// The state of `var` laid out for `path`, from one tensor per slot (shaped like `var`, the
    /// caller has checked; any float type and device). Values convert as the kernel's
    /// [`Real::of`] does, so either layout of one state holds the same numbers.
    fn from_columns(path: UpdatePath, var: &Var, columns: &[Tensor]) -> candle_core::Result<Self> {
        if path.uses_tensor_ops(var.device()) {
            // Converted before moving, so a float type the device lacks never lands there; and
            // detached, so a restored tensor never drags a graph into the updates.
            let on_device = |t: &Tensor| t.detach().to_dtype(var.dtype())?.to_device(var.device());
            return columns.iter().map(on_device).collect::<candle_core::Result<_>>().map(Self::Tensors);
        }
        let columns = columns
            .iter()
            .map(|t| t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let (n, k) = (var.elem_count(), columns.len());
        let interleaved: Vec<f64> = (0..n * k).map(|i| columns[i % k][i / k]).collect();
        Ok(match var.dtype() {
            DType::F32 => Self::F32(interleaved.into_iter().map(|v| v as f32).collect()),
            _ => Self::F64(interleaved),
        })
    }

    /// One tensor per slot of `var`'s `k`, shaped like it and on its device.
    fn columns(&self, var: &Var, k: usize) -> candle_core::Result<Vec<Tensor>> {
        fn column<T: WithDType>(v: &[T], j: usize, k: usize, var: &Var) -> candle_core::Result<Tensor> {
            Tensor::from_vec(v.iter().skip(j).step_by(k).copied().collect::<Vec<_>>(), var.shape(), var.device())
        }
        match self {
            Self::F32(v) => (0..k).map(|j| column(v, j, k, var)).collect(),
            Self::F64(v) => (0..k).map(|j| column(v, j, k, var)).collect(),
            Self::Tensors(t) => Ok(t.clone()),
        }
    }
}

impl<R: UpdateRule> FusedOptimizer<R> {
    /// One group with every parameter in `params`, configured by `rule`.
    pub fn new(params: Vec<(String, Var)>, rule: R) -> Result<Self> {
        Self::with_groups(vec![ParamGroup::all(params)], rule)
    }

    /// Parameters in `groups`, each group overriding `rule`'s learning rate, weight decay or
    /// momentum, frozen groups left out of every update and holding no state. CPU parameters
    /// take the fused kernel, others tensor ops ([`UpdatePath::Auto`]).
    pub fn with_groups(groups: Vec<ParamGroup>, rule: R) -> Result<Self> {
        Self::with_update_path(groups, rule, UpdatePath::Auto)
    }

    /// As [`FusedOptimizer::with_groups`], updating along `path`.
    pub fn with_update_path(groups: Vec<ParamGroup>, rule: R, path: UpdatePath) -> Result<Self> {
        rule.validate()?;
        let k = rule.slot_names().len();
        let mut seen = std::collections::BTreeSet::new();
        let mut slots = Vec::new();
        let mut records = Vec::with_capacity(groups.len());
        for (gi, group) in groups.into_iter().enumerate() {
            for (name, var) in &group.params {
                if !seen.insert(name.clone()) {
                    return Err(Error::DuplicateParameter { name: name.clone() });
                }
                if group.options.frozen {
                    continue;
                }
                let state = SlotState::new(path, name, var, k, rule.initial_state())?;
                slots.push(Slot { name: name.clone(), var: var.clone(), group: gi, state, step: 0 });
            }
            records.push(GroupRecord {
                name: group.name,
                options: group.options,
                params: group.params.into_iter().map(|(n, _)| n).collect(),
            });
        }
        let current = rule.defaults();
        Ok(Self { initial_lr: current.lr, current, rule, groups: records, slots, path })
    }

    /// The path chosen at construction or by [`FusedOptimizer::set_update_path`] (parameters
    /// off the CPU take tensor ops whatever it says).
    pub fn update_path(&self) -> UpdatePath {
        self.path
    }

    /// Switches to `path`, moving every parameter's state into that path's layout (same
    /// values), so a run continues exactly as it would have on the new path from the start.
    pub fn set_update_path(&mut self, path: UpdatePath) -> Result<()> {
        let k = self.rule.slot_names().len();
        let mut moved = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let is_tensors = matches!(s.state, SlotState::Tensors(_));
            moved.push(if is_tensors == path.uses_tensor_ops(s.var.device()) {
                None
            } else {
                Some(SlotState::from_columns(path, &s.var, &s.state.columns(&s.var, k)?)?)
            });
        }
        // Everything converted: commit.
        for (s, state) in self.slots.iter_mut().zip(moved) {
            if let Some(state) = state {
                s.state = state;
            }
        }
        self.path = path;
        Ok(())
    }

    /// The rule as configured (the learning rate in force is [`Optimizer::learning_rate`]).
    pub fn config(&self) -> &R {
        &self.rule
    }

    /// Names of the parameters this optimizer updates (frozen ones excluded).
    pub fn trainable(&self) -> Vec<&str> {
        self.slots.iter().map(|s| s.name.as_str()).collect()
    }

    /// Names of the parameters updated with tensor ops ([`UpdatePath::TensorOps`], or off the
    /// CPU); the others take the fused kernel.
    pub fn tensor_op_params(&self) -> Vec<&str> {
        self.slots.iter().filter(|s| matches!(s.state, SlotState::Tensors(_))).map(|s| s.name.as_str()).collect()
    }

    fn hyper(&self, group: usize) -> Hyper {
        let o = &self.groups[group].options;
        let scale = match o.lr {
            Some(lr) if self.initial_lr != 0.0 => lr / self.initial_lr,
            _ => 1.0,
        };
        let lr = match o.lr {
            Some(lr) if self.initial_lr == 0.0 => lr,
            _ => self.current.lr * scale,
        };
        Hyper {
            lr,
            weight_decay: o.weight_decay.unwrap_or(self.current.weight_decay),
            momentum: o.momentum.or(self.current.momentum).unwrap_or(0.0),
        }
    }

    fn meta(&self) -> OptimizerMeta {
        OptimizerMeta {
            optimizer: R::NAME.into(),
            slots: self.rule.slot_names().iter().map(|s| s.to_string()).collect(),
            lr: self.current.lr,
            initial_lr: self.initial_lr,
            momentum: self.current.momentum,
            groups: self.groups.clone(),
        }
    }
}

impl<R: UpdateRule> Optimizer for FusedOptimizer<R> {
    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        let k = self.rule.slot_names().len();
        for i in 0..self.slots.len() {
            let Some(grad) = grads.get(&self.slots[i].var) else { continue };
            let hyper = self.hyper(self.slots[i].group);
            let slot = &mut self.slots[i];
            let step = slot.step + 1;
            if let SlotState::Tensors(state) = &mut slot.state {
                let c = self.rule.coefficients::<f64>(&hyper, step);
                // Detached, so the update records no graph: each step's state would otherwise
                // keep every earlier step's tensors alive.
                let p = slot.var.as_tensor().detach();
                let (p, new_state) = R::apply_tensors(&c, &p, &grad.detach(), state)?;
                if new_state.len() != k {
                    candle_core::bail!("{}: the tensor update made {} state slots, not {k}", R::NAME, new_state.len())
                }
                slot.var.set(&p)?;
                *state = new_state;
            } else {
                let op = FusedStep { rule: &self.rule, hyper, step, k, state: RefCell::new(&mut slot.state) };
                slot.var.as_tensor().inplace_op2(&grad.contiguous()?, &op)?;
            }
            slot.step = step;
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.current.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.current.lr = lr;
    }

    fn set_momentum(&mut self, momentum: f64) {
        if self.current.momentum.is_some() {
            self.current.momentum = Some(momentum);
            for g in &mut self.groups {
                g.options.momentum = None;
            }
        }
    }

    fn state(&self) -> Result<OptimizerState> {
        let names = self.rule.slot_names();
        let k = names.len();
        let mut buffers = BTreeMap::new();
        for s in &self.slots {
            for (slot_name, t) in names.iter().zip(s.state.columns(&s.var, k)?) {
                buffers.insert(format!("{}.{slot_name}", s.name), t);
            }
            buffers.insert(format!("{}.step", s.name), Tensor::new(s.step as f64, s.var.device())?);
        }
        let step = self.slots.iter().map(|s| s.step).max().unwrap_or(0);
        Ok(OptimizerState { buffers, step, meta: self.meta() })
    }

    fn load_state(&mut self, mut state: OptimizerState) -> Result<()> {
        let meta = &state.meta;
        let mismatch = |detail: String| Err(Error::StateMismatch { detail });
        if meta.optimizer != R::NAME {
            return mismatch(format!("state of optimizer `{}` cannot be loaded into `{}`", meta.optimizer, R::NAME));
        }
        if meta.slots != self.rule.slot_names() {
            return mismatch(format!("state has slots {:?}, this optimizer {:?}", meta.slots, self.rule.slot_names()));
        }
        if meta.groups.len() != self.groups.len() {
            let (saved, here) = (meta.groups.len(), self.groups.len());
            return mismatch(format!("state has {saved} parameter groups, this optimizer {here}"));
        }
        if let Some(g) = self.groups.iter().zip(&meta.groups).find(|(g, saved)| g.params != saved.params) {
            return mismatch(format!("group `{}` holds other parameters in the saved state", g.0.name));
        }

        let names = self.rule.slot_names();
        let k = names.len();
        let mut restored = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let mut take = |slot: &str, shape: &[usize]| -> Result<Tensor> {
                let buffer = format!("{}.{slot}", s.name);
                let t = state
                    .buffers
                    .remove(&buffer)
                    .ok_or_else(|| Error::MissingBuffer { param: s.name.clone(), buffer: buffer.clone() })?;
                if t.dims() != shape {
                    return Err(Error::BufferShape {
                        param: s.name.clone(),
                        buffer,
                        expected: shape.to_vec(),
                        found: t.dims().to_vec(),
                    });
                }
                Ok(t)
            };
            let mut columns = Vec::with_capacity(k);
            for slot_name in names {
                columns.push(take(slot_name, s.var.dims())?);
            }
            let step = take("step", &[])?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if step < 0.0 || step.fract() != 0.0 {
                return Err(Error::StateMismatch { detail: format!("`{}.step` is {step}, not a step count", s.name) });
            }
            // Whichever path saved it: the buffers are the same on both.
            restored.push((SlotState::from_columns(self.path, &s.var, &columns)?, step as u64));
        }
        if let Some(buffer) = state.buffers.keys().next() {
            return Err(Error::UnknownBuffer { buffer: buffer.clone() });
        }
        // Everything checked: commit.
        for (s, (st, step)) in self.slots.iter_mut().zip(restored) {
            s.state = st;
            s.step = step;
        }
        let meta = state.meta;
        for (g, saved) in self.groups.iter_mut().zip(meta.groups) {
            g.options = saved.options;
        }
        self.current.lr = meta.lr;
        self.initial_lr = meta.initial_lr;
        if let (Some(m), Some(_)) = (meta.momentum, self.current.momentum) {
            self.current.momentum = Some(m);
        }
        Ok(())
    }
}

/// One in-place update of a parameter from its gradient, reading and writing its state.
struct FusedStep<'a, R> {
    rule: &'a R,
    /// The parameter's hyper-parameters and step count, from which the coefficients are made
    /// in the parameter's float type.
    hyper: Hyper,
    step: u64,
    k: usize,
    state: RefCell<&'a mut SlotState>,
}

/// Elements per parallel chunk; tensors smaller than this run on the calling thread.
const CHUNK: usize = 1 << 15;

fn run<R: UpdateRule, T: Real>(c: &R::Coefficients<T>, k: usize, p: &mut [T], g: &[T], s: &mut [T]) {
    let serial = |p: &mut [T], g: &[T], s: &mut [T]| {
        if k == 0 {
            for (p, &g) in p.iter_mut().zip(g) {
                R::apply(c, p, g, &mut []);
            }
        } else {
            for ((p, &g), s) in p.iter_mut().zip(g).zip(s.chunks_exact_mut(k)) {
                R::apply(c, p, g, s);
            }
        }
    };
    if p.len() <= CHUNK {
        serial(p, g, s);
    } else if k == 0 {
        p.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).for_each(|(p, g)| serial(p, g, &mut []));
    } else {
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(s.par_chunks_mut(CHUNK * k))
            .for_each(|((p, g), s)| serial(p, g, s));
    }
}

impl<R: UpdateRule> InplaceOp2 for FusedStep<'_, R> {
    fn name(&self) -> &'static str {
        "ember-fused-optimizer-step"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<()> {
        let (Some((p0, p1)), Some((g0, g1))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
            candle_core::bail!("fused optimizer step: parameter and gradient must be contiguous")
        };
        if p1 - p0 != g1 - g0 {
            candle_core::bail!("fused optimizer step: {} parameter elements but {} gradient elements", p1 - p0, g1 - g0)
        }
        let mut state = self.state.borrow_mut();
        match (s1, s2, &mut **state) {
            (CpuStorage::F32(p), CpuStorage::F32(g), SlotState::F32(s)) => {
                let c = self.rule.coefficients::<f32>(&self.hyper, self.step);
                run::<R, f32>(&c, self.k, &mut p[p0..p1], &g[g0..g1], s)
            }
            (CpuStorage::F64(p), CpuStorage::F64(g), SlotState::F64(s)) => {
                let c = self.rule.coefficients::<f64>(&self.hyper, self.step);
                run::<R, f64>(&c, self.k, &mut p[p0..p1], &g[g0..g1], s)
            }
            _ => candle_core::bail!("fused optimizer step: parameter, gradient and state dtypes differ"),
        }
        Ok(())
    }
}
