//! A layer's trainable tensor, which can be frozen.

use candle_core::{Tensor, Var};

use crate::LowRank;

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

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Var};

    use super::Param;

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
}
