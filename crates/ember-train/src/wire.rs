//! What the members of a multi-process group tell each other about a collective call: which
//! call, on which tensors (dtype and shape), checked on rank 0 before any data moves
//! ([`check_in`]); and the tensors' bytes, for the TCP backend.
//!
//! A tensor travels as its values in little-endian order, row-major; `f16` and `bf16` values
//! travel widened to `f32` (exactly, and back exactly), so no half-precision type is needed
//! here. Every received size is compared with the one the receiver expects before a tensor is
//! built.

use candle_core::{DType, Device, Tensor};

use crate::store::Store;
use crate::{Error, Result};

/// The collective being called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Op {
    Sum = 1,
    Broadcast = 2,
    Barrier = 3,
}

impl Op {
    fn from_byte(byte: u8) -> Option<Self> {
        [Op::Sum, Op::Broadcast, Op::Barrier].into_iter().find(|o| *o as u8 == byte)
    }
}

/// Implements [`crate::Collective`] for a group member that holds its [`Store`] in `store` and
/// moves the data of one call in `fn exchange(&mut self, Op, &[Tensor]) -> Result<Vec<Tensor>>`
/// (the TCP and NCCL members differ only there). Every call first checks that the group is
/// whole and that every rank makes the same call ([`check_in`]); on an error of this rank's own
/// the group is aborted (a no-op when the failure came from the group, which is recorded
/// already), so no rank waits for this one.
macro_rules! collective_through_call {
    ($member:ty) => {
        impl $member {
            fn call(
                &mut self,
                op: $crate::wire::Op,
                tensors: &[candle_core::Tensor],
            ) -> $crate::Result<Vec<candle_core::Tensor>> {
                let result = self.checked_in(op, tensors).and_then(|()| self.exchange(op, tensors));
                if let Err(error) = &result {
                    self.store.abort(&error.to_string());
                }
                result
            }

            fn checked_in(&mut self, op: $crate::wire::Op, tensors: &[candle_core::Tensor]) -> $crate::Result<()> {
                self.store.check()?;
                $crate::wire::check_in(&mut self.store, &$crate::wire::header(op, tensors)?)
            }
        }

        impl $crate::collective::Collective for $member {
            fn rank(&self) -> usize {
                self.store.rank()
            }

            fn world_size(&self) -> usize {
                self.store.world_size()
            }

            fn all_reduce_sum(&mut self, tensors: &[candle_core::Tensor]) -> $crate::Result<Vec<candle_core::Tensor>> {
                self.call($crate::wire::Op::Sum, tensors)
            }

            fn broadcast(&mut self, tensors: &[candle_core::Tensor]) -> $crate::Result<Vec<candle_core::Tensor>> {
                self.call($crate::wire::Op::Broadcast, tensors)
            }

            fn barrier(&mut self) -> $crate::Result<()> {
                self.call($crate::wire::Op::Barrier, &[]).map(|_| ())
            }

            fn abort(&mut self, reason: &str) {
                self.store.abort(reason)
            }
        }
    };
}
pub(crate) use collective_through_call;

/// The dtypes a group exchanges, and their codes on the wire.
const DTYPES: [(DType, u8); 7] = [
    (DType::U8, 1),
    (DType::U32, 2),
    (DType::I64, 3),
    (DType::BF16, 4),
    (DType::F16, 5),
    (DType::F32, 6),
    (DType::F64, 7),
];

fn unsupported(dtype: DType) -> Error {
    Error::Collective(format!("tensors of dtype {dtype:?} cannot be exchanged between processes"))
}

fn dtype_code(dtype: DType) -> Result<u8> {
    DTYPES.iter().find(|(d, _)| *d == dtype).map(|(_, code)| *code).ok_or_else(|| unsupported(dtype))
}

fn dtype_of(code: u8) -> Option<DType> {
    DTYPES.iter().find(|(_, c)| *c == code).map(|(d, _)| *d)
}

/// The header of a call: `op`, the tensor count, and each tensor's dtype and dims.
pub(crate) fn header(op: Op, tensors: &[Tensor]) -> Result<Vec<u8>> {
    let mut bytes = vec![op as u8];
    bytes.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    for t in tensors {
        bytes.push(dtype_code(t.dtype())?);
        let dims = t.dims();
        let rank = u8::try_from(dims.len())
            .map_err(|_| Error::Collective(format!("a tensor of {} dimensions cannot be exchanged", dims.len())))?;
        bytes.push(rank);
        for d in dims {
            bytes.extend_from_slice(&(*d as u64).to_le_bytes());
        }
    }
    Ok(bytes)
}

/// A parsed header: the op and each tensor's dtype and dims. `None` when malformed.
type Parsed = (Op, Vec<(DType, Vec<u64>)>);

fn parse_header(bytes: &[u8]) -> Option<Parsed> {
    let (&op, rest) = bytes.split_first()?;
    let op = Op::from_byte(op)?;
    let (count, mut rest) = rest.split_first_chunk::<8>()?;
    let count = u64::from_le_bytes(*count);
    let mut tensors = Vec::new();
    for _ in 0..count {
        // Each tensor takes at least two bytes, so a huge count fails here, not in a huge Vec.
        let (&[code, rank], tail) = rest.split_first_chunk::<2>()?;
        let dtype = dtype_of(code)?;
        let mut dims = Vec::with_capacity(usize::from(rank));
        rest = tail;
        for _ in 0..rank {
            let (d, tail) = rest.split_first_chunk::<8>()?;
            dims.push(u64::from_le_bytes(*d));
            rest = tail;
        }
        tensors.push((dtype, dims));
    }
    rest.is_empty().then_some((op, tensors))
}

/// Why rank `rank`'s header `theirs` differs from rank 0's `mine`.
fn mismatch(mine: &[u8], theirs: &[u8], rank: usize) -> String {
    let (Some((op, a)), Some((their_op, b))) = (parse_header(mine), parse_header(theirs)) else {
        return format!("rank {rank} sent a malformed request");
    };
    if op != their_op {
        return format!("rank {rank} called {their_op:?} while rank 0 called {op:?}");
    }
    if a.len() != b.len() {
        return format!("{op:?}: rank 0 gave {} tensors but rank {rank} gave {}", a.len(), b.len());
    }
    match a.iter().zip(&b).enumerate().find(|(_, (x, y))| x != y) {
        Some((i, ((da, sa), (db, sb)))) => {
            format!("{op:?}: tensor {i} is {da:?} {sa:?} on rank 0 but {db:?} {sb:?} on rank {rank}")
        }
        None => format!("rank {rank} sent another request than rank 0's"),
    }
}

/// Every rank's `header` reaches rank 0, which checks it against its own and answers when all
/// agree: after it, every rank is in the same call with the same tensors. A disagreement ends
/// the group ([`Error::Collective`] on rank 0, [`Error::ReplicaFailed`] elsewhere).
pub(crate) fn check_in(store: &mut Store, header: &[u8]) -> Result<()> {
    if store.rank() == 0 {
        for peer in 1..store.world_size() {
            let theirs = store.recv(peer)?;
            if theirs != header {
                let reason = mismatch(header, &theirs, peer);
                store.abort(&reason);
                return Err(Error::Collective(reason));
            }
        }
        for peer in 1..store.world_size() {
            store.send(peer, &[])?;
        }
    } else {
        store.send(0, header)?;
        store.recv(0)?;
    }
    Ok(())
}

/// `t`'s values as bytes (see the module docs), moved to the CPU first.
pub(crate) fn tensor_bytes(t: &Tensor) -> Result<Vec<u8>> {
    fn le<T, const N: usize>(values: Vec<T>, to_bytes: fn(T) -> [u8; N]) -> Vec<u8> {
        values.into_iter().flat_map(to_bytes).collect()
    }
    let flat = t.flatten_all()?.to_device(&Device::Cpu)?;
    Ok(match t.dtype() {
        DType::U8 => flat.to_vec1::<u8>()?,
        DType::U32 => le(flat.to_vec1::<u32>()?, u32::to_le_bytes),
        DType::I64 => le(flat.to_vec1::<i64>()?, i64::to_le_bytes),
        DType::F32 => le(flat.to_vec1::<f32>()?, f32::to_le_bytes),
        DType::F64 => le(flat.to_vec1::<f64>()?, f64::to_le_bytes),
        DType::BF16 | DType::F16 => le(flat.to_dtype(DType::F32)?.to_vec1::<f32>()?, f32::to_le_bytes),
        other => return Err(unsupported(other)),
    })
}

/// A CPU tensor of `dtype` and `dims` from `bytes` sent by rank `from`; fails unless `bytes`
/// holds exactly that many values.
pub(crate) fn tensor_from_bytes(bytes: &[u8], dtype: DType, dims: &[usize], from: usize) -> Result<Tensor> {
    fn values<T, const N: usize>(bytes: &[u8], from_bytes: fn([u8; N]) -> T) -> Vec<T> {
        bytes.chunks_exact(N).map(|c| from_bytes(c.try_into().unwrap_or([0; N]))).collect()
    }
    let width = match dtype {
        DType::U8 => 1,
        DType::U32 => 4,
        DType::I64 | DType::F64 => 8,
        DType::F32 | DType::BF16 | DType::F16 => 4,
        other => return Err(unsupported(other)),
    };
    let expected = dims.iter().try_fold(width, |n: usize, d| n.checked_mul(*d));
    if expected != Some(bytes.len()) {
        return Err(Error::Collective(format!(
            "rank {from} sent {} bytes for a {dtype:?} tensor of shape {dims:?}",
            bytes.len()
        )));
    }
    let cpu = &Device::Cpu;
    Ok(match dtype {
        DType::U8 => Tensor::from_vec(bytes.to_vec(), dims, cpu)?,
        DType::U32 => Tensor::from_vec(values(bytes, u32::from_le_bytes), dims, cpu)?,
        DType::I64 => Tensor::from_vec(values(bytes, i64::from_le_bytes), dims, cpu)?,
        DType::F64 => Tensor::from_vec(values(bytes, f64::from_le_bytes), dims, cpu)?,
        _ => Tensor::from_vec(values(bytes, f32::from_le_bytes), dims, cpu)?.to_dtype(dtype)?,
    })
}
