//! The shape shared by ember's ops with a weight and an optional bias (`(x, w[, b])`): one
//! forward and one backward implementation serve candle's `CustomOp2` (no bias) and
//! `CustomOp3` (bias) interfaces.

use candle_core::op::BackpropOp;
use candle_core::{CpuStorage, Layout, Result, Shape, Storage, Tensor};

use crate::element::{contiguous_slice, Float};

/// One operand of an op as candle hands it over: its CPU storage and the layout to read it by.
pub(crate) type Operand<'a> = (&'a CpuStorage, &'a Layout);

/// An op on `(x, weight[, bias])`.
pub(crate) trait WeightedOp {
    /// Forward on CPU storages; `bias` is `None` for the two-operand form.
    fn forward(&self, x: Operand<'_>, w: Operand<'_>, bias: Option<Operand<'_>>) -> Result<(CpuStorage, Shape)>;

    /// Gradients of `x`, `w` and `bias` (each `None` unless `needs` asks for it), from the
    /// storages of `[x, w, output, output gradient]` (the gradient already contiguous).
    fn gradients(&self, storages: [Operand<'_>; 4], needs: [bool; 3]) -> Result<[Option<CpuStorage>; 3]>;
}

/// The three operands of a [`WeightedOp`]'s forward as contiguous slices of `T`, each refused
/// (naming `op` and the operand) when it is not contiguous or not of type `T`.
pub(crate) type Operands<'a, T> = (&'a [T], &'a [T], Option<&'a [T]>);

/// See [`Operands`].
pub(crate) fn operand_slices<'a, T: Float>(
    op: &str,
    x: Operand<'a>,
    w: Operand<'a>,
    bias: Option<Operand<'a>>,
) -> Result<Operands<'a, T>> {
    let xs = contiguous_slice::<T>(x.0, x.1, op, "input")?;
    let ws = contiguous_slice::<T>(w.0, w.1, op, "weight")?;
    let bs = bias.map(|(s, l)| contiguous_slice::<T>(s, l, op, "bias")).transpose()?;
    Ok((xs, ws, bs))
}

/// The backward pass of a [`WeightedOp`]: which gradients are needed (`Tensor::track_op`), the
/// operands' CPU storages, the op's gradients, wrapped as tensors.
pub(crate) fn backward<O: WeightedOp>(
    op: &O,
    name: &str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    res: &Tensor,
    grad: &Tensor,
) -> Result<[Option<Tensor>; 3]> {
    let needs = [x.track_op(), w.track_op(), bias.is_some_and(|b| b.track_op())];
    let grad = grad.contiguous()?;
    let (xs, xl) = x.storage_and_layout();
    let (ws, wl) = w.storage_and_layout();
    let (ys, yl) = res.storage_and_layout();
    let (gs, gl) = grad.storage_and_layout();
    let (Storage::Cpu(xs), Storage::Cpu(ws), Storage::Cpu(ys), Storage::Cpu(gs)) = (&*xs, &*ws, &*ys, &*gs) else {
        candle_core::bail!("{name} backward: expected CPU tensors")
    };
    let grads = op.gradients([(xs, xl), (ws, wl), (ys, yl), (gs, gl)], needs)?;
    Ok(gradient_tensors(grads, x, w, bias))
}

/// Wraps computed gradient storages as constant tensors of the operands' shapes.
fn gradient_tensors(
    grads: [Option<CpuStorage>; 3],
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> [Option<Tensor>; 3] {
    let tensor = |s: Option<CpuStorage>, shape: &Shape| {
        s.map(|s| Tensor::from_storage(Storage::Cpu(s), shape.clone(), BackpropOp::none(), false))
    };
    let [dx, dw, db] = grads;
    [tensor(dx, x.shape()), tensor(dw, w.shape()), bias.and_then(|b| tensor(db, b.shape()))]
}

/// Implements `CustomOp2` (`$name`) and `CustomOp3` (`$name_bias`) for a [`WeightedOp`].
macro_rules! impl_weighted_custom_ops {
    ($op:ty, $name:literal, $name_bias:literal) => {
        impl candle_core::CustomOp2 for $op {
            fn name(&self) -> &'static str {
                $name
            }

            fn cpu_fwd(
                &self,
                s1: &candle_core::CpuStorage,
                l1: &candle_core::Layout,
                s2: &candle_core::CpuStorage,
                l2: &candle_core::Layout,
            ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
                $crate::weighted_op::WeightedOp::forward(self, (s1, l1), (s2, l2), None)
            }

            fn bwd(
                &self,
                x: &candle_core::Tensor,
                w: &candle_core::Tensor,
                res: &candle_core::Tensor,
                grad: &candle_core::Tensor,
            ) -> candle_core::Result<(Option<candle_core::Tensor>, Option<candle_core::Tensor>)> {
                let [dx, dw, _] = $crate::weighted_op::backward(self, $name, x, w, None, res, grad)?;
                Ok((dx, dw))
            }
        }

        impl candle_core::CustomOp3 for $op {
            fn name(&self) -> &'static str {
                $name_bias
            }

            fn cpu_fwd(
                &self,
                s1: &candle_core::CpuStorage,
                l1: &candle_core::Layout,
                s2: &candle_core::CpuStorage,
                l2: &candle_core::Layout,
                s3: &candle_core::CpuStorage,
                l3: &candle_core::Layout,
            ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
                $crate::weighted_op::WeightedOp::forward(self, (s1, l1), (s2, l2), Some((s3, l3)))
            }

            #[allow(clippy::type_complexity)]
            fn bwd(
                &self,
                x: &candle_core::Tensor,
                w: &candle_core::Tensor,
                b: &candle_core::Tensor,
                res: &candle_core::Tensor,
                grad: &candle_core::Tensor,
            ) -> candle_core::Result<(
                Option<candle_core::Tensor>,
                Option<candle_core::Tensor>,
                Option<candle_core::Tensor>,
            )> {
                let [dx, dw, db] = $crate::weighted_op::backward(self, $name_bias, x, w, Some(b), res, grad)?;
                Ok((dx, dw, db))
            }
        }
    };
}
pub(crate) use impl_weighted_custom_ops;
