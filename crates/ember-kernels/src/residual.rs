//! The end of a residual block: `act(x + shortcut)` as one op.
//!
//! Written as candle's ops it is an addition and a ReLU: two allocating passes forward, and a
//! backward through both (the ReLU's alone takes four allocating passes). Here it is one pass
//! forward, and one pass backward that masks the output gradient by the output's sign and hands
//! the same gradient to both operands, as the derivative of a sum says.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::activation::FusedActivation;
use crate::element::{contiguous_slice, Float};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `act(a + b)` for tensors of one shape, in one pass forward and one backward (f32/f64 on the
/// CPU; candle's ops elsewhere). ResNet's blocks end with it (`relu(residual + shortcut)`).
pub fn add_activate(a: &Tensor, b: &Tensor, act: FusedActivation) -> Result<Tensor> {
    if a.shape() != b.shape() {
        candle_core::bail!("add_activate: shapes {:?} and {:?} differ", a.dims(), b.dims())
    }
    let fast = crate::portable::native(a) && a.dtype() == b.dtype();
    if !fast {
        return crate::activate(&(a + b)?, act);
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, AddActivate(act))
}

struct AddActivate(FusedActivation);

impl CustomOp2 for AddActivate {
    fn name(&self) -> &'static str {
        "ember-add-activate"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        fn go<T: Float>(
            act: FusedActivation,
            a: (&CpuStorage, &Layout),
            b: (&CpuStorage, &Layout),
        ) -> Result<CpuStorage> {
            let a = contiguous_slice::<T>(a.0, a.1, "add_activate", "first operand")?;
            let b = contiguous_slice::<T>(b.0, b.1, "add_activate", "second operand")?;
            let mut y = crate::element::zeroed(a.len());
            y.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK))).for_each(|(y, (a, b))| {
                for ((y, a), b) in y.iter_mut().zip(a).zip(b) {
                    *y = *a + *b;
                }
                act.apply(y);
            });
            Ok(T::wrap(y))
        }
        let out = match s1 {
            CpuStorage::F32(_) => go::<f32>(self.0, (s1, l1), (s2, l2))?,
            CpuStorage::F64(_) => go::<f64>(self.0, (s1, l1), (s2, l2))?,
            other => candle_core::bail!("add_activate: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if !a.track_op() && !b.track_op() {
            return Ok((None, None));
        }
        let dz = crate::activation::masked_gradient(self.0, res, grad)?;
        // The sum's derivative is 1 for both operands: one gradient tensor serves both.
        Ok((a.track_op().then(|| dz.clone()), b.track_op().then_some(dz)))
    }
}
