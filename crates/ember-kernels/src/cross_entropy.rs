//! Softmax cross-entropy on logits as one op: log-softmax, the pick of each target's
//! log-probability and the mean in one pass forward, and `(softmax - one_hot) / n` in one pass
//! backward.

use candle_core::op::BackpropOp;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Storage, Tensor};

use crate::element::{contiguous_slice, Float};

/// Mean cross-entropy between `logits` `(n, classes)` and integer class `targets` `(n,)` (u8,
/// u32 or i64), skipping rows whose target equals `ignore_index` (the mean is over the rows
/// kept; all rows ignored gives NaN, as in PyTorch). f32/f64 CPU logits run as one op; other
/// dtypes and devices compute the same value with candle's ops (the targets are checked on the
/// host first, so a bad label is an error naming its row on every device).
///
/// # Errors
/// Shapes that do not match, unsupported dtypes or devices, and targets outside `0..classes`
/// (naming the row).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, ignore_index: Option<i64>) -> Result<Tensor> {
    let (n, _) = logits.dims2()?;
    if targets.dims() != [n] {
        candle_core::bail!(
            "cross_entropy: targets {:?}, expected ({n},) for logits {:?}",
            targets.dims(),
            logits.dims()
        )
    }
    if !crate::portable::native(logits) {
        return portable_cross_entropy(logits, targets, ignore_index);
    }
    logits.contiguous()?.apply_op2(&targets.contiguous()?, CrossEntropy { ignore_index })
}

/// [`cross_entropy`] from candle's ops: a stable log-softmax, a `gather` of each kept row's
/// target, and the mean over the kept rows.
fn portable_cross_entropy(logits: &Tensor, targets: &Tensor, ignore_index: Option<i64>) -> Result<Tensor> {
    let (n, classes) = logits.dims2()?;
    let labels = match targets.dtype() {
        DType::U8 | DType::U32 | DType::I64 => targets.to_dtype(DType::I64)?.to_vec1::<i64>()?,
        other => candle_core::bail!("cross_entropy: targets must be u8, u32 or i64, got {other:?}"),
    };
    check_targets(&labels, classes, ignore_index)?;
    let kept: Vec<bool> = labels.iter().map(|&t| Some(t) != ignore_index).collect();
    // In range for kept rows (checked above); ignored rows pick class 0 and are masked out.
    let picks: Vec<u32> = labels.iter().zip(&kept).map(|(&t, &k)| if k { t as u32 } else { 0 }).collect();
    let mask: Vec<f32> = kept.iter().map(|&k| f32::from(u8::from(k))).collect();
    let device = logits.device();
    let picks = Tensor::from_vec(picks, (n, 1), device)?;
    let mask = Tensor::from_vec(mask, n, device)?.to_dtype(logits.dtype())?;
    let shifted = logits.broadcast_sub(&logits.max_keepdim(1)?.detach())?;
    let log_probs = shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(1)?.log()?)?;
    let picked = log_probs.gather(&picks, 1)?.squeeze(1)?;
    let count = kept.iter().filter(|&&k| k).count();
    // All rows ignored: 0/0, NaN, as in PyTorch.
    (picked * mask)?.sum_all()?.neg()? / count as f64
}

fn target_values(storage: &CpuStorage, layout: &Layout) -> Result<Vec<i64>> {
    let Some((a, b)) = layout.contiguous_offsets() else {
        candle_core::bail!("cross_entropy: targets must be contiguous")
    };
    Ok(match storage {
        CpuStorage::U8(v) => v[a..b].iter().map(|&t| t as i64).collect(),
        CpuStorage::U32(v) => v[a..b].iter().map(|&t| t as i64).collect(),
        CpuStorage::I64(v) => v[a..b].to_vec(),
        _ => candle_core::bail!("cross_entropy: targets must be u8, u32 or i64"),
    })
}

fn check_targets(targets: &[i64], classes: usize, ignore: Option<i64>) -> Result<()> {
    for (row, &t) in targets.iter().enumerate() {
        if Some(t) != ignore && (t < 0 || t as usize >= classes) {
            candle_core::bail!("cross_entropy: target class {t} at row {row} out of range for {classes} classes")
        }
    }
    Ok(())
}

struct CrossEntropy {
    ignore_index: Option<i64>,
}

/// Per row: log-sum-exp of the logits.
fn log_sum_exp<T: Float>(row: &[T]) -> T {
    let mut m = row[0];
    for &v in row {
        if v > m {
            m = v;
        }
    }
    let mut s = T::ZERO;
    for &v in row {
        s += (v - m).exp();
    }
    m + s.ln()
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "ember-cross-entropy"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, classes) = l1.shape().dims2()?;
        let targets = target_values(s2, l2)?;
        check_targets(&targets, classes, self.ignore_index)?;
        fn go<T: Float>(logits: &[T], targets: &[i64], classes: usize, ignore: Option<i64>) -> CpuStorage {
            let (mut sum, mut kept) = (0f64, 0usize);
            for (row, &t) in logits.chunks(classes).zip(targets) {
                if Some(t) == ignore {
                    continue;
                }
                sum += (log_sum_exp(row) - row[t as usize]).to_f64();
                kept += 1;
            }
            T::wrap(vec![T::from_f64(sum / kept as f64)])
        }
        let out = match s1 {
            CpuStorage::F32(_) => {
                go::<f32>(contiguous_slice(s1, l1, "cross_entropy", "logits")?, &targets, classes, self.ignore_index)
            }
            CpuStorage::F64(_) => {
                go::<f64>(contiguous_slice(s1, l1, "cross_entropy", "logits")?, &targets, classes, self.ignore_index)
            }
            _ => candle_core::bail!("cross_entropy: unsupported logits dtype"),
        };
        Ok((out, Shape::from(())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let scale = grad.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let (_, classes) = logits.dims2()?;
        let (ls, ll) = logits.storage_and_layout();
        let (ts, tl) = targets.storage_and_layout();
        let (Storage::Cpu(ls), Storage::Cpu(ts)) = (&*ls, &*ts) else {
            candle_core::bail!("cross_entropy backward: expected CPU tensors")
        };
        let targets = target_values(ts, tl)?;
        fn go<T: Float>(
            (ls, ll): (&CpuStorage, &Layout),
            targets: &[i64],
            classes: usize,
            ignore: Option<i64>,
            scale: f64,
        ) -> Result<CpuStorage> {
            let logits = contiguous_slice::<T>(ls, ll, "cross_entropy", "logits")?;
            let kept = targets.iter().filter(|&&t| Some(t) != ignore).count();
            let k = T::from_f64(scale / kept as f64);
            let mut d = vec![T::ZERO; logits.len()];
            for ((row, out), &t) in logits.chunks(classes).zip(d.chunks_mut(classes)).zip(targets) {
                if Some(t) == ignore {
                    continue;
                }
                let lse = log_sum_exp(row);
                for (o, &v) in out.iter_mut().zip(row) {
                    *o = (v - lse).exp() * k;
                }
                out[t as usize] = out[t as usize] - k;
            }
            Ok(T::wrap(d))
        }
        let d = match ls {
            CpuStorage::F32(_) => go::<f32>((ls, ll), &targets, classes, self.ignore_index, scale)?,
            CpuStorage::F64(_) => go::<f64>((ls, ll), &targets, classes, self.ignore_index, scale)?,
            _ => candle_core::bail!("cross_entropy backward: unsupported dtype"),
        };
        Ok((Some(Tensor::from_storage(Storage::Cpu(d), logits.shape().clone(), BackpropOp::none(), false)), None))
    }
}
