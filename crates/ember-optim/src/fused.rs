//! The engine every optimizer shares: parameter groups, per-parameter state, and one fused,
//! in-place, allocation-free update pass per parameter.
//!
//! An [`UpdateRule`] says how one element moves (`p`, its gradient `g`, its state slots); the
//! engine runs that rule over the parameter's storage in place (a candle `InplaceOp2`), in
//! parallel for large tensors. State lives in plain vectors, interleaved per element
//! (`[m0, v0, m1, v1, ...]`), so an update touches each cache line once.

use std::cell::RefCell;
use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Tensor, Var};
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
}

/// Per-parameter state, interleaved by element.
#[derive(Debug, Clone)]
enum SlotState {
    F32(Vec<f32>),
    F64(Vec<f64>),
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
}

impl<R: UpdateRule> FusedOptimizer<R> {
    /// One group with every parameter in `params`, configured by `rule`.
    pub fn new(params: Vec<(String, Var)>, rule: R) -> Result<Self> {
        Self::with_groups(vec![ParamGroup::all(params)], rule)
    }

    /// Parameters in `groups`, each group overriding `rule`'s learning rate, weight decay or
    /// momentum, frozen groups left out of every update and holding no state.
    pub fn with_groups(groups: Vec<ParamGroup>, rule: R) -> Result<Self> {
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
                if !var.device().is_cpu() {
                    return Err(Error::UnsupportedParameter {
                        name: name.clone(),
                        detail: "ember's fused optimizers run on CPU tensors only".into(),
                    });
                }
                let n = var.elem_count() * k;
                let init = rule.initial_state();
                let state = match var.dtype() {
                    DType::F32 => SlotState::F32(vec![init as f32; n]),
                    DType::F64 => SlotState::F64(vec![init; n]),
                    other => {
                        return Err(Error::UnsupportedParameter {
                            name: name.clone(),
                            detail: format!("dtype {other:?} (f32 or f64 needed)"),
                        })
                    }
                };
                slots.push(Slot { name: name.clone(), var: var.clone(), group: gi, state, step: 0 });
            }
            records.push(GroupRecord {
                name: group.name,
                options: group.options,
                params: group.params.into_iter().map(|(n, _)| n).collect(),
            });
        }
        let current = rule.defaults();
        Ok(Self { initial_lr: current.lr, current, rule, groups: records, slots })
    }

    /// The rule as configured (the learning rate in force is [`Optimizer::learning_rate`]).
    pub fn config(&self) -> &R {
        &self.rule
    }

    /// Names of the parameters this optimizer updates (frozen ones excluded).
    pub fn trainable(&self) -> Vec<&str> {
        self.slots.iter().map(|s| s.name.as_str()).collect()
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
            let grad = grad.contiguous()?;
            let hyper = self.hyper(self.slots[i].group);
            let slot = &mut self.slots[i];
            slot.step += 1;
            let op = FusedStep { rule: &self.rule, hyper, step: slot.step, k, state: RefCell::new(&mut slot.state) };
            slot.var.as_tensor().inplace_op2(&grad, &op)?;
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
            let shape = s.var.shape().clone();
            for (j, slot_name) in names.iter().enumerate() {
                let t = match &s.state {
                    SlotState::F32(v) => Tensor::from_vec(
                        v.iter().skip(j).step_by(k).copied().collect::<Vec<_>>(),
                        shape.clone(),
                        s.var.device(),
                    )?,
                    SlotState::F64(v) => Tensor::from_vec(
                        v.iter().skip(j).step_by(k).copied().collect::<Vec<_>>(),
                        shape.clone(),
                        s.var.device(),
                    )?,
                };
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
                columns.push(take(slot_name, s.var.dims())?.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?);
            }
            let step = take("step", &[])?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if step < 0.0 || step.fract() != 0.0 {
                return Err(Error::StateMismatch { detail: format!("`{}.step` is {step}, not a step count", s.name) });
            }
            let n = s.var.elem_count();
            let interleaved: Vec<f64> = (0..n * k).map(|i| columns[i % k][i / k]).collect();
            let state = match s.state {
                SlotState::F32(_) => SlotState::F32(interleaved.into_iter().map(|v| v as f32).collect()),
                SlotState::F64(_) => SlotState::F64(interleaved),
            };
            restored.push((state, step as u64));
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
