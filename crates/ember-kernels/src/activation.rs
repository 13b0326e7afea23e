//! Activations that kernels fuse into their output, and a single-pass ReLU op.

use candle_core::backend::BackendStorage;
use candle_core::op::BackpropOp;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use crate::element::{contiguous_slice, Float};

/// An activation a kernel applies to its own output before writing it, so no separate pass
/// (and no separate gradient tensor) is needed. Each one's derivative can be read off the
/// output alone, which is what lets the backward pass fuse it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FusedActivation {
    /// No activation.
    #[default]
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)` (MobileNet, EfficientNet-Lite).
    Relu6,
}

impl FusedActivation {
    /// Applies the activation in place.
    #[inline]
    pub(crate) fn apply<T: Float>(self, y: &mut [T]) {
        match self {
            Self::Identity => {}
            Self::Relu => y.iter_mut().for_each(|v| *v = if *v > T::ZERO { *v } else { T::ZERO }),
            Self::Relu6 => {
                let six = T::from_f64(6.0);
                y.iter_mut().for_each(|v| {
                    *v = if *v > T::ZERO {
                        if *v < six {
                            *v
                        } else {
                            six
                        }
                    } else {
                        T::ZERO
                    }
                })
            }
        }
    }

    /// `dz = dy * act'(z)`, where the derivative is read from the activation's output `y`.
    /// At the kinks (`y = 0`, `y = 6`) the gradient is 0, as in PyTorch.
    #[inline]
    pub(crate) fn mask_gradient<T: Float>(self, y: &[T], dy: &[T], dz: &mut [T]) {
        match self {
            Self::Identity => dz.copy_from_slice(dy),
            Self::Relu => {
                for ((d, y), g) in dz.iter_mut().zip(y).zip(dy) {
                    *d = if *y > T::ZERO { *g } else { T::ZERO };
                }
            }
            Self::Relu6 => {
                let six = T::from_f64(6.0);
                for ((d, y), g) in dz.iter_mut().zip(y).zip(dy) {
                    *d = if *y > T::ZERO && *y < six { *g } else { T::ZERO };
                }
            }
        }
    }
}

/// Elements per parallel task of the element-wise ops.
const CHUNK: usize = 1 << 14;

/// Applies a fused activation as its own op: one pass forward, one pass backward (candle's
/// `relu` backward takes four allocating passes). f32/f64 CPU tensors only; others go through
/// candle's ops.
pub fn activate(xs: &Tensor, act: FusedActivation) -> Result<Tensor> {
    if act == FusedActivation::Identity {
        return Ok(xs.clone());
    }
    if !crate::portable::native(xs) {
        return portable_activate(xs, act);
    }
    xs.contiguous()?.apply_op1(Activate(act))
}

/// [`activate`] from candle's ops, with PyTorch's gradient at the kinks: 0 where `x` is exactly
/// 0 (and, for ReLU6, exactly 6). candle's `relu` passes the gradient at 0 and its `minimum`
/// at 6, and exact zeros are common (a convolution over zero padding, a ReLU before it), so
/// the activation is written as `x` times a 0/1 mask that the gradient sees as a constant.
pub(crate) fn portable_activate(xs: &Tensor, act: FusedActivation) -> Result<Tensor> {
    match act {
        FusedActivation::Identity => Ok(xs.clone()),
        FusedActivation::Relu => xs * xs.gt(0.0)?.to_dtype(xs.dtype())?,
        FusedActivation::Relu6 => {
            let inside = (xs.gt(0.0)? * xs.lt(6.0)?)?.to_dtype(xs.dtype())?;
            let capped = (xs.ge(6.0)?.to_dtype(xs.dtype())? * 6.0)?;
            (xs * inside)? + capped
        }
    }
}

/// ReLU, `max(x, 0)`, as a single-pass op with a single-pass backward.
pub fn relu(xs: &Tensor) -> Result<Tensor> {
    activate(xs, FusedActivation::Relu)
}

struct Activate(FusedActivation);

impl CustomOp1 for Activate {
    fn name(&self) -> &'static str {
        "ember-activation"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        fn go<T: Float>(act: FusedActivation, s: &CpuStorage, l: &Layout) -> Result<CpuStorage> {
            let mut y = contiguous_slice::<T>(s, l, "activation", "input")?.to_vec();
            y.par_chunks_mut(CHUNK).for_each(|c| act.apply(c));
            Ok(T::wrap(y))
        }
        let out = match storage {
            CpuStorage::F32(_) => go::<f32>(self.0, storage, layout)?,
            CpuStorage::F64(_) => go::<f64>(self.0, storage, layout)?,
            other => candle_core::bail!("activation: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(masked_gradient(self.0, res, grad)?))
    }
}

/// `dy · act'(z)` for an activation whose output is `res` and whose output gradient is
/// `grad`, in one parallel pass (the derivative read off the output): the backward pass of
/// every op that ends in a fused activation and passes the gradient on unchanged otherwise.
pub(crate) fn masked_gradient(act: FusedActivation, res: &Tensor, grad: &Tensor) -> Result<Tensor> {
    let grad = grad.contiguous()?;
    let (ys, yl) = res.storage_and_layout();
    let (gs, gl) = grad.storage_and_layout();
    let (Storage::Cpu(ys), Storage::Cpu(gs)) = (&*ys, &*gs) else {
        candle_core::bail!("activation backward: expected CPU tensors")
    };
    fn go<T: Float>(act: FusedActivation, y: (&CpuStorage, &Layout), g: (&CpuStorage, &Layout)) -> Result<CpuStorage> {
        let y = contiguous_slice::<T>(y.0, y.1, "activation backward", "output")?;
        let dy = contiguous_slice::<T>(g.0, g.1, "activation backward", "gradient")?;
        let mut dz = crate::element::zeroed(y.len());
        dz.par_chunks_mut(CHUNK).zip(y.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK))).for_each(|(dz, (y, dy))| {
            act.mask_gradient(y, dy, dz);
        });
        Ok(T::wrap(dz))
    }
    let out = match ys {
        CpuStorage::F32(_) => go::<f32>(act, (ys, yl), (gs, gl))?,
        CpuStorage::F64(_) => go::<f64>(act, (ys, yl), (gs, gl))?,
        other => candle_core::bail!("activation backward: unsupported dtype {:?}", other.dtype()),
    };
    Ok(Tensor::from_storage(Storage::Cpu(out), res.shape().clone(), BackpropOp::none(), false))
}
