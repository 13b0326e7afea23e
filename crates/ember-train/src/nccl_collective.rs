//! [`NcclCollective`]: one process per GPU, on one machine or several, reducing gradients with
//! NCCL on the GPUs (what PyTorch's `nccl` backend is to DDP). Behind the `nccl` feature.
//!
//! The group forms through the rendezvous ([`RendezvousConfig`]); rank 0 creates NCCL's unique
//! id and sends its bytes to the others over the rendezvous connections, and every rank builds
//! its communicator on its candle CUDA device's stream, so NCCL's work is ordered with candle's
//! kernels without extra synchronisation.
//!
//! Before every call the ranks check in over TCP ([`crate::wire`]): same call, same dtypes and
//! shapes, nobody failed. Only then does NCCL run, so a rank that failed before the call (the
//! usual case: an error in its forward or backward pass) ends the others with
//! [`Error::ReplicaFailed`] instead of leaving them in an NCCL kernel waiting for it. A process
//! killed in the middle of an NCCL call is the one failure this cannot see: the others wait in
//! NCCL (as PyTorch does without its watchdog).

use std::ffi::c_char;

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::driver::{DeviceRepr, ValidAsZeroBits};
use candle_core::cuda::cudarc::nccl::{Comm, Id, NcclType, ReduceOp};
use candle_core::cuda::CudaDType;
use candle_core::{CpuStorage, CudaDevice, CudaStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};

use crate::rendezvous::{RendezvousConfig, RendezvousOptions};
use crate::store::Store;
use crate::wire::{collective_through_call, Op};
use crate::{Error, Result};

/// The length of NCCL's unique id.
const ID_BYTES: usize = 128;

/// An NCCL communicator that may move to another thread.
struct SendComm(Comm);

// SAFETY: `Comm` is not `Send` only because it holds NCCL's raw `ncclComm_t` pointer. NCCL
// allows a communicator to be used from any thread as long as calls on it are not concurrent,
// and its CUDA stream (an `Arc<CudaStream>`) is itself `Send + Sync`. The `SendComm` is owned by
// one `NcclCollective`, whose every use of it goes through `&mut self`, so one thread at a time
// uses it; moving the collective to the thread that drives its replica moves the communicator
// with it and leaves no other handle behind.
unsafe impl Send for SendComm {}

/// One GPU process's member of a group joined through a [`RendezvousConfig`], reducing and
/// broadcasting with NCCL.
///
/// Sums run as NCCL all-reduce (sum) on the GPU, so their order of additions is NCCL's (rings
/// or trees): results are identical on every rank but not bit-for-bit those of
/// [`crate::TcpCollective`]. Tensors of `f32`, `f64`, `bf16`, `f16`, `u8`, `u32` and `i64` are
/// supported; a tensor elsewhere than on this member's GPU is moved there and back.
pub struct NcclCollective {
    store: Store,
    comm: SendComm,
    device: CudaDevice,
}

impl std::fmt::Debug for NcclCollective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NcclCollective")
            .field("rank", &self.store.rank())
            .field("world", &self.store.world_size())
            .field("device", &self.device)
            .finish()
    }
}

fn nccl_error(what: &str, error: impl std::fmt::Debug) -> Error {
    Error::Collective(format!("NCCL {what}: {error:?}"))
}

impl NcclCollective {
    /// Joins the group `config` describes and builds this rank's NCCL communicator on
    /// `device` (a CUDA device: `cuda:LOCAL_RANK` as a rule).
    pub fn join(config: &RendezvousConfig, options: &RendezvousOptions, device: &Device) -> Result<Self> {
        Self::new(config.join(options)?, device)
    }

    /// A member over the connections of `store`, with its communicator on `device`. Every rank
    /// of the group calls it (it is itself a collective call).
    pub fn new(mut store: Store, device: &Device) -> Result<Self> {
        let result = Self::communicator(&mut store, device);
        match result {
            Ok((comm, device)) => Ok(Self { store, comm: SendComm(comm), device }),
            Err(error) => {
                store.abort(&error.to_string());
                Err(error)
            }
        }
    }

    fn communicator(store: &mut Store, device: &Device) -> Result<(Comm, CudaDevice)> {
        let Device::Cuda(cuda) = device else {
            return Err(Error::Invalid(format!("NCCL runs on CUDA devices, not on {device:?}")));
        };
        let mine = if store.rank() == 0 {
            let id = Id::new().map_err(|e| nccl_error("creating the unique id", e))?;
            id.internal().iter().map(|c| *c as u8).collect()
        } else {
            Vec::new()
        };
        let bytes = store.broadcast_bytes(&mine)?;
        let internal: [c_char; ID_BYTES] =
            bytes.iter().map(|b| *b as c_char).collect::<Vec<_>>().try_into().map_err(|_| {
                Error::Collective(format!("rank 0 sent an NCCL id of {} bytes, not {ID_BYTES}", bytes.len()))
            })?;
        let stream = cuda.cuda_stream();
        // NCCL builds the communicator on the thread's current device.
        stream.context().bind_to_thread().map_err(|e| nccl_error("selecting the device", e))?;
        let comm = Comm::from_rank(stream, store.rank(), store.world_size(), Id::uninit(internal))
            .map_err(|e| nccl_error("creating the communicator", e))?;
        Ok((comm, cuda.clone()))
    }

    /// Moves the data of one call, after every rank checked in (`collective_through_call!`).
    fn exchange(&mut self, op: Op, tensors: &[Tensor]) -> Result<Vec<Tensor>> {
        let gpu = Device::Cuda(self.device.clone());
        let call = NcclCall { comm: &self.comm.0, op };
        tensors
            .iter()
            .map(|t| {
                let on_gpu = t.to_device(&gpu)?.contiguous()?;
                Ok(on_gpu.apply_op1_no_bwd(&call)?.to_device(t.device())?)
            })
            .collect()
    }
}

/// One NCCL call on one tensor, as a candle op (so it gets the tensor's CUDA storage).
struct NcclCall<'a> {
    comm: &'a Comm,
    op: Op,
}

impl CustomOp1 for NcclCall<'_> {
    fn name(&self) -> &'static str {
        "nccl"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("NCCL runs on CUDA tensors")
    }

    fn cuda_fwd(&self, storage: &CudaStorage, layout: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        let out = match storage.dtype() {
            DType::F32 => run::<f32>(self.comm, self.op, storage, layout)?,
            DType::F64 => run::<f64>(self.comm, self.op, storage, layout)?,
            DType::BF16 => run::<half::bf16>(self.comm, self.op, storage, layout)?,
            DType::F16 => run::<half::f16>(self.comm, self.op, storage, layout)?,
            DType::U8 => run::<u8>(self.comm, self.op, storage, layout)?,
            DType::U32 => run::<u32>(self.comm, self.op, storage, layout)?,
            DType::I64 => run::<i64>(self.comm, self.op, storage, layout)?,
            other => candle_core::bail!("NCCL: tensors of dtype {other:?} are not supported"),
        };
        Ok((out, layout.shape().clone()))
    }
}

/// Sums (all-reduce) or broadcasts from rank 0 the contiguous `storage` into a new buffer.
fn run<T>(comm: &Comm, op: Op, storage: &CudaStorage, layout: &Layout) -> candle_core::Result<CudaStorage>
where
    T: NcclType + DeviceRepr + ValidAsZeroBits + CudaDType,
{
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("NCCL: the tensor must be contiguous")
    };
    let input = storage.as_cuda_slice::<T>()?.slice(start..end);
    let mut output = storage.device.alloc_zeros::<T>(end - start)?;
    let done = match op {
        Op::Sum => comm.all_reduce(&input, &mut output, &ReduceOp::Sum),
        // Only rank 0's input is read.
        Op::Broadcast => comm.broadcast(Some(&input), &mut output, 0),
        Op::Barrier => candle_core::bail!("NCCL: a barrier moves no tensor"),
    };
    done.map_err(|e| candle_core::Error::Msg(format!("NCCL {op:?}: {e:?}")))?;
    Ok(CudaStorage::wrap_cuda_slice(output, storage.device.clone()))
}

collective_through_call!(NcclCollective);
