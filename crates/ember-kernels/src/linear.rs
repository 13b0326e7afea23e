//! Fully connected layer as one op: `act(x · wᵀ + b)` forward, and in backward the activation
//! mask, input gradient, weight gradient and bias gradient from one pass over the batch — where
//! candle records a transpose, a matmul, a broadcast add and an activation, each with its own
//! gradient tensors.

use candle_core::{CpuStorage, Result, Shape, Tensor};

use crate::activation::{activate, FusedActivation};
use crate::element::{contiguous_slice, Float};
use crate::matmul::{matmul_parallel_rows, Mat};
use crate::weighted_op::{impl_weighted_custom_ops, operand_slices, Operand, Operands, WeightedOp};

/// `act(xs · weightᵀ + bias)`.
///
/// # Shapes
/// - `xs`: `(..., in)`
/// - `weight`: `(out, in)`
/// - `bias`: `(out,)`
/// - output: `(..., out)`
///
/// f32/f64 CPU tensors run as one fused op (GEMMs from the `gemm` crate); others use candle's
/// matmul, broadcast add and activation.
pub fn linear(xs: &Tensor, weight: &Tensor, bias: Option<&Tensor>, act: FusedActivation) -> Result<Tensor> {
    // Under no_grad the output must not record (and keep alive) its inputs.
    let (xs, weight, bias) =
        (&crate::no_grad::input(xs), &crate::no_grad::input(weight), bias.map(crate::no_grad::input));
    let bias = bias.as_ref();
    let (out_f, in_f) = weight.dims2()?;
    if xs.rank() == 0 || xs.dims()[xs.rank() - 1] != in_f {
        candle_core::bail!("linear: input {:?} does not end in the weight's {in_f} input features", xs.dims())
    }
    if let Some(b) = bias {
        if b.dims() != [out_f] {
            candle_core::bail!("linear: bias shape {:?}, expected ({out_f},)", b.dims())
        }
    }
    let mut out_dims = xs.dims().to_vec();
    *out_dims.last_mut().unwrap_or(&mut 0) = out_f;
    let rows = xs.elem_count() / in_f.max(1);
    let native = crate::portable::native(xs) && in_f > 0;
    if !native {
        let ys = xs.reshape((rows, in_f))?.matmul(&weight.t()?)?;
        let ys = match bias {
            Some(b) => ys.broadcast_add(b)?,
            None => ys,
        };
        return activate(&ys, act)?.reshape(out_dims);
    }
    let x2 = xs.reshape((rows, in_f))?.contiguous()?;
    let weight = weight.contiguous()?;
    let op = LinearOp(act);
    let ys = match bias {
        Some(b) => x2.apply_op3(&weight, &b.contiguous()?, op)?,
        None => x2.apply_op2(&weight, op)?,
    };
    ys.reshape(out_dims)
}

#[derive(Debug, Clone, Copy)]
struct LinearOp(FusedActivation);

fn forward<T: Float>(
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    act: FusedActivation,
    (n, i, o): (usize, usize, usize),
) -> Vec<T> {
    let mut y = vec![T::ZERO; n * o];
    if let Some(b) = b {
        for row in y.chunks_mut(o) {
            row.copy_from_slice(b);
        }
    }
    matmul_parallel_rows(&mut y, (n, o, i), Mat::rows(x, i), Mat::transposed(w, i), b.is_some());
    act.apply(&mut y);
    y
}

impl WeightedOp for LinearOp {
    fn forward(&self, x: Operand<'_>, w: Operand<'_>, b: Option<Operand<'_>>) -> Result<(CpuStorage, Shape)> {
        let (n, i) = x.1.shape().dims2()?;
        let (o, wi) = w.1.shape().dims2()?;
        if wi != i {
            candle_core::bail!("linear: input has {i} features, weight expects {wi}")
        }
        fn go<T: Float>(
            act: FusedActivation,
            (xs, ws, bs): Operands<'_, T>,
            dims: (usize, usize, usize),
        ) -> CpuStorage {
            T::wrap(forward(xs, ws, bs, act, dims))
        }
        let out = match x.0 {
            CpuStorage::F32(_) => go::<f32>(self.0, operand_slices("linear", x, w, b)?, (n, i, o)),
            CpuStorage::F64(_) => go::<f64>(self.0, operand_slices("linear", x, w, b)?, (n, i, o)),
            _ => candle_core::bail!("linear: unsupported dtype"),
        };
        Ok((out, Shape::from((n, o))))
    }

    fn gradients(&self, s: [Operand<'_>; 4], needs: [bool; 3]) -> Result<[Option<CpuStorage>; 3]> {
        let (n, i) = s[0].1.shape().dims2()?;
        let o = s[1].1.shape().dims2()?.0;
        fn go<T: Float>(
            act: FusedActivation,
            s: [Operand<'_>; 4],
            (n, i, o): (usize, usize, usize),
            needs: [bool; 3],
        ) -> Result<[Option<CpuStorage>; 3]> {
            let what = ["input", "weight", "output", "output gradient"];
            let [x, w, y, dy] = [0, 1, 2, 3].map(|k| contiguous_slice::<T>(s[k].0, s[k].1, "linear backward", what[k]));
            let (x, w, y, dy) = (x?, w?, y?, dy?);
            let mut dz_buf = Vec::new();
            let dz: &[T] = if act == FusedActivation::Identity {
                dy
            } else {
                dz_buf.resize(n * o, T::ZERO);
                act.mask_gradient(y, dy, &mut dz_buf);
                &dz_buf
            };
            let dx = needs[0].then(|| {
                let mut dx = vec![T::ZERO; n * i];
                matmul_parallel_rows(&mut dx, (n, i, o), Mat::rows(dz, o), Mat::rows(w, i), false);
                T::wrap(dx)
            });
            let dw = needs[1].then(|| {
                let mut dw = vec![T::ZERO; o * i];
                matmul_parallel_rows(&mut dw, (o, i, n), Mat::transposed(dz, o), Mat::rows(x, i), false);
                T::wrap(dw)
            });
            let db = needs[2].then(|| {
                let mut db = vec![T::ZERO; o];
                for row in dz.chunks(o) {
                    for (a, v) in db.iter_mut().zip(row) {
                        *a += *v;
                    }
                }
                T::wrap(db)
            });
            Ok([dx, dw, db])
        }
        match s[0].0 {
            CpuStorage::F32(_) => go::<f32>(self.0, s, (n, i, o), needs),
            CpuStorage::F64(_) => go::<f64>(self.0, s, (n, i, o), needs),
            _ => candle_core::bail!("linear backward: unsupported dtype"),
        }
    }
}

impl_weighted_custom_ops!(LinearOp, "ember-linear", "ember-linear-bias");
