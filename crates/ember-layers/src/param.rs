//! A layer's trainable tensor, which can be frozen.

use candle_core::{Tensor, Var};

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
}

impl Param {
    /// A trainable (unfrozen) parameter holding `value`.
    pub fn new(value: Tensor) -> Self {
        Self { value, frozen: false }
    }

    /// What the forward pass computes with: the tensor, detached when frozen.
    pub fn value(&self) -> Tensor {
        if self.frozen {
            self.value.detach()
        } else {
            self.value.clone()
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
        let grads = p.value().sqr()?.sum_all()?.backward()?;
        assert!(grads.get(var.as_tensor()).is_some());
        p.set_frozen(true);
        let grads = p.value().sqr()?.sum_all()?.backward()?;
        assert!(grads.get(var.as_tensor()).is_none());
        Ok(())
    }
}
