//! [`TcpCollective`]: data-parallel replicas in separate processes, on one machine or several,
//! exchanging tensors over TCP through rank 0 (what PyTorch's gloo backend is to DDP on CPUs).

use candle_core::{Device, Tensor};

use crate::rendezvous::{RendezvousConfig, RendezvousOptions};
use crate::store::Store;
use crate::wire::{collective_through_call, tensor_bytes, tensor_from_bytes, Op};
use crate::Result;

/// One process's member of a group joined through a [`RendezvousConfig`].
///
/// Every call first checks that all ranks made the same call with tensors of the same dtypes
/// and shapes ([`Error::Collective`](crate::Error::Collective) otherwise). A sum then gathers
/// every rank's tensors on rank 0, which adds them in rank order (`((t0 + t1) + t2) + ...`, on
/// the CPU, in the tensors' dtype, as [`InProcessGroup`](crate::InProcessGroup) does) and sends
/// the sums back, so every rank gets the same bits and a run is reproducible. Results come back
/// on each input's device.
///
/// A rank that fails calls [`Collective::abort`](crate::Collective::abort); a rank whose
/// process ends or whose connection breaks has left. Either way the others' calls fail with
/// [`Error::ReplicaFailed`](crate::Error::ReplicaFailed), and a peer that stops answering makes
/// them fail after [`RendezvousOptions::timeout`].
#[derive(Debug)]
pub struct TcpCollective {
    store: Store,
}

impl TcpCollective {
    /// A member over the connections of `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Joins the group `config` describes (rank 0 waits for the others) and returns this
    /// process's member.
    pub fn join(config: &RendezvousConfig, options: &RendezvousOptions) -> Result<Self> {
        Ok(Self::new(config.join(options)?))
    }

    /// Moves the data of one call, after every rank checked in (`collective_through_call!`).
    fn exchange(&mut self, op: Op, tensors: &[Tensor]) -> Result<Vec<Tensor>> {
        let (rank, world) = (self.store.rank(), self.store.world_size());
        let on_cpu = match op {
            Op::Barrier => return Ok(Vec::new()),
            Op::Broadcast if rank == 0 => {
                let payloads = tensors.iter().map(tensor_bytes).collect::<Result<Vec<_>>>()?;
                for peer in 1..world {
                    for payload in &payloads {
                        self.store.send(peer, payload)?;
                    }
                }
                return Ok(tensors.to_vec());
            }
            Op::Sum if rank == 0 => {
                let mut sums =
                    tensors.iter().map(|t| t.to_device(&Device::Cpu)).collect::<candle_core::Result<Vec<_>>>()?;
                for peer in 1..world {
                    for (sum, t) in sums.iter_mut().zip(tensors) {
                        let theirs = tensor_from_bytes(&self.store.recv(peer)?, t.dtype(), t.dims(), peer)?;
                        *sum = (&*sum + theirs)?;
                    }
                }
                let payloads = sums.iter().map(tensor_bytes).collect::<Result<Vec<_>>>()?;
                for peer in 1..world {
                    for payload in &payloads {
                        self.store.send(peer, payload)?;
                    }
                }
                sums
            }
            Op::Sum | Op::Broadcast => {
                if op == Op::Sum {
                    for t in tensors {
                        self.store.send(0, &tensor_bytes(t)?)?;
                    }
                }
                let mut received = Vec::with_capacity(tensors.len());
                for t in tensors {
                    received.push(tensor_from_bytes(&self.store.recv(0)?, t.dtype(), t.dims(), 0)?);
                }
                received
            }
        };
        on_cpu.iter().zip(tensors).map(|(r, mine)| Ok(r.to_device(mine.device())?)).collect()
    }
}

collective_through_call!(TcpCollective);
