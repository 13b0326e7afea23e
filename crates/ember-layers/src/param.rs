//! A layer's trainable tensor, which can be frozen and can carry a low-rank update (LoRA).
//!
//! The update lives here, with the parameter, because it is part of what the parameter's value
//! is: the layer computes with `W + s · B A` ([`Param::value`]) and keeps its own forward pass, so
//! any layer whose weight is a [`Param`] can be adapted and nothing is rebuilt per step.

use std::sync::{Arc, Mutex};

use candle_core::{Result, Tensor, Var};

/// A trainable tensor held by a layer (a weight or a bias), and whether it is frozen.
///
/// The tensor is normally the [`ParamStore`](crate::ParamStore)'s `Var` itself (same storage),
/// so an optimizer stepping the store's variables changes what the layer computes with.
/// A frozen parameter enters the forward pass detached ([`Param::value`]): no gradient flows
/// into it and backpropagation does no work for it, so it stays bit-identical under any
/// optimizer. Freezing is decided per parameter through the model tree
/// ([`crate::freeze`]), never by the layer itself.
#[derive(Debug, Clone)]
pub struct Param {
    value: Tensor,
    frozen: bool,
    /// A LoRA update the forward pass adds to the value (boxed: most parameters have none).
    low_rank: Option<Box<LowRank>>,
}

impl Param {
    /// A trainable (unfrozen) parameter holding `value`.
    pub fn new(value: Tensor) -> Self {
        Self { value, frozen: false, low_rank: None }
    }

    /// What the forward pass computes with: the tensor, detached when frozen, plus the
    /// low-rank update when one is attached ([`Param::attach_low_rank`]).
    pub fn value(&self) -> candle_core::Result<Tensor> {
        let base = if self.frozen { self.value.detach() } else { self.value.clone() };
        match &self.low_rank {
            None => Ok(base),
            Some(lr) => base + lr.delta(self.value.dims())?,
        }
    }

    /// The tensor as held (not detached, whatever the frozen flag says).
    pub fn tensor(&self) -> &Tensor {
        &self.value
    }

    /// The variable behind the tensor, when it is one (a `ParamStore`'s parameter is; a value
    /// computed from others, such as a LoRA-adapted weight, is not). The `Var` shares the
    /// tensor's storage, so setting it changes the layer.
    pub fn var(&self) -> Option<Var> {
        self.value.is_variable().then(|| Var::from_tensor(&self.value).ok()).flatten()
    }

    /// Whether the parameter is frozen.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Freezes (`true`) or unfreezes the parameter.
    pub fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
    }

    /// Attaches a low-rank update `s · B A` (LoRA): from now on the forward pass computes with
    /// `W + s · B A`, and the tree reports `A` and `B` beside the weight. Fails, attaching
    /// nothing, unless `B` has one row per output (`W`'s first dimension) and `A` one column per
    /// element of the rest of `W`'s shape, with the same dtype and device.
    pub fn attach_low_rank(&mut self, update: LowRank) -> candle_core::Result<()> {
        let dims = self.value.dims();
        let (out, fan_in) = match dims.split_first() {
            Some((out, rest)) if !rest.is_empty() => (*out, rest.iter().product::<usize>()),
            _ => candle_core::bail!("low-rank update: a weight of shape {dims:?} has no input dimension"),
        };
        let (a, b) = (update.a().tensor(), update.b().tensor());
        if a.dims() != [update.rank(), fan_in] || b.dims() != [out, update.rank()] {
            candle_core::bail!(
                "low-rank update: A {:?} and B {:?} do not fit a weight of shape {dims:?} (need ({r}, {fan_in}) and ({out}, {r}))",
                a.dims(),
                b.dims(),
                r = update.rank()
            )
        }
        if a.dtype() != self.value.dtype() || !a.device().same_device(self.value.device()) {
            candle_core::bail!("low-rank update: dtype or device differs from the weight's")
        }
        self.low_rank = Some(Box::new(update));
        Ok(())
    }

    /// The attached low-rank update, if any.
    pub fn low_rank(&self) -> Option<&LowRank> {
        self.low_rank.as_deref()
    }

    /// The attached low-rank update, mutably (to visit its `A` and `B`).
    pub(crate) fn low_rank_mut(&mut self) -> Option<&mut LowRank> {
        self.low_rank.as_deref_mut()
    }

    /// Detaches the low-rank update, leaving the weight as it is stored.
    pub fn take_low_rank(&mut self) -> Option<LowRank> {
        self.low_rank.take().map(|b| *b)
    }

    /// Adds the attached update into the stored weight and zeroes `B`, so the weight alone now
    /// computes what weight and update computed (and the adapted layer still does). Returns
    /// whether there was an update to merge; fails when the weight or `B` is not a variable.
    pub fn merge_low_rank(&mut self) -> candle_core::Result<bool> {
        let Some(lr) = self.low_rank.as_deref() else { return Ok(false) };
        let (Some(w), Some(b)) = (self.var(), lr.b().var()) else {
            candle_core::bail!("low-rank merge: the weight and B must be variables")
        };
        let delta = lr.delta(self.value.dims())?.detach();
        w.set(&(self.value.detach() + delta)?)?;
        b.set(&b.as_tensor().zeros_like()?)?;
        Ok(true)
    }

    /// Replaces the tensor (keeping the frozen flag), e.g. to put an adapted weight in place;
    /// fails when the shapes differ, since the layer was built for the old one.
    pub fn replace(&mut self, value: Tensor) -> candle_core::Result<()> {
        if value.shape() != self.value.shape() {
            candle_core::bail!("parameter: shape {:?} cannot replace shape {:?}", value.shape(), self.value.shape())
        }
        self.value = value;
        Ok(())
    }
}

/// A shared, settable mask over the rank components (`None`: all kept). The model that owns the
/// adapters draws a new one before each training forward pass (rank dropout) and clears it for
/// evaluation; the layers only read it.
pub type RankMask = Arc<Mutex<Option<Tensor>>>;

/// The update `scale · B · diag(mask) · A`, reshaped to the weight's shape.
///
/// `A` is `(rank, fan_in)` and `B` is `(out, rank)` where the weight is `(out, ...)` and
/// `fan_in` the product of the rest of its shape (`in` for a linear layer,
/// `in / groups · kh · kw` for a convolution). Both are [`Param`]s: they train, can be frozen, and
/// appear in the model tree beside the weight (`{layer}.lora_A`, `{layer}.lora_B`).
#[derive(Debug, Clone)]
pub struct LowRank {
    a: Param,
    b: Param,
    scale: f64,
    mask: RankMask,
}

impl LowRank {
    /// An update from `a` `(rank, fan_in)` and `b` `(out, rank)`, scaled by `scale`.
    pub fn new(a: Tensor, b: Tensor, scale: f64) -> Result<Self> {
        let (rank, _) = a.dims2()?;
        let (_, rank_b) = b.dims2()?;
        if rank != rank_b {
            candle_core::bail!("low-rank update: A has rank {rank} but B has rank {rank_b}")
        }
        Ok(Self { a: Param::new(a), b: Param::new(b), scale, mask: Arc::new(Mutex::new(None)) })
    }

    /// The rank.
    pub fn rank(&self) -> usize {
        self.a.tensor().dims()[0]
    }

    /// `A`.
    pub fn a(&self) -> &Param {
        &self.a
    }

    /// `B`.
    pub fn b(&self) -> &Param {
        &self.b
    }

    /// The scale `s` (LoRA's `alpha / rank`).
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The handle through which a rank mask `(1, rank)` is set for the next forward passes.
    pub fn mask(&self) -> RankMask {
        self.mask.clone()
    }

    /// `s · B · diag(mask) · A` in the weight's `shape`.
    pub fn delta(&self, shape: &[usize]) -> Result<Tensor> {
        let mut b = self.b.value()?;
        let mask = self.mask.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(mask) = mask {
            b = b.broadcast_mul(&mask)?;
        }
        (b.matmul(&self.a.value()?)? * self.scale)?.reshape(shape)
    }

    pub(crate) fn a_mut(&mut self) -> &mut Param {
        &mut self.a
    }

    pub(crate) fn b_mut(&mut self) -> &mut Param {
        &mut self.b
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Var};

    use super::{LowRank, Param};

    #[test]
    fn frozen_param_gets_no_gradient() -> candle_core::Result<()> {
        let var = Var::ones(3, DType::F32, &Device::Cpu)?;
        let mut p = Param::new(var.as_tensor().clone());
        assert!(p.var().is_some_and(|v| v.as_tensor().id() == var.as_tensor().id()));
        let grads = p.value()?.sqr()?.sum_all()?.backward()?;
        assert!(grads.get(var.as_tensor()).is_some());
        p.set_frozen(true);
        let grads = p.value()?.sqr()?.sum_all()?.backward()?;
        assert!(grads.get(var.as_tensor()).is_none());
        Ok(())
    }

    #[test]
    fn a_low_rank_update_that_does_not_fit_is_refused_and_nothing_changes() -> candle_core::Result<()> {
        let w = Var::ones((4, 3, 2, 2), DType::F32, &Device::Cpu)?;
        let mut p = Param::new(w.as_tensor().clone());
        // A must be (rank, 3 * 2 * 2) and B (4, rank).
        let bad = LowRank::new(
            Var::zeros((2, 5), DType::F32, &Device::Cpu)?.as_tensor().clone(),
            Var::zeros((4, 2), DType::F32, &Device::Cpu)?.as_tensor().clone(),
            1.0,
        )?;
        let err = p.attach_low_rank(bad).unwrap_err().to_string();
        assert!(err.contains("[2, 5]") && err.contains("(2, 12)"), "{err}");
        assert!(p.low_rank().is_none());
        let bad_rank = LowRank::new(
            Var::zeros((2, 12), DType::F32, &Device::Cpu)?.as_tensor().clone(),
            Var::zeros((4, 3), DType::F32, &Device::Cpu)?.as_tensor().clone(),
            1.0,
        );
        assert!(bad_rank.is_err_and(|e| e.to_string().contains("rank 2") && e.to_string().contains("rank 3")));
        // A fitting update changes the value by s·B·A.
        let a = Var::ones((2, 12), DType::F32, &Device::Cpu)?;
        let b = Var::ones((4, 2), DType::F32, &Device::Cpu)?;
        p.attach_low_rank(LowRank::new(a.as_tensor().clone(), b.as_tensor().clone(), 0.5)?)?;
        let v = p.value()?.flatten_all()?.to_vec1::<f32>()?;
        assert!(v.iter().all(|x| *x == 2.0), "1 + 0.5 * 2: {v:?}");
        Ok(())
    }
}
