//! Collective operations between data-parallel replicas: the [`Collective`] trait the
//! [`Learner`](crate::Learner) drives, and [`InProcessGroup`], its implementation for replicas
//! running on threads of one process (CPU replicas, and the tests of the data-parallel driver).
//!
//! An NCCL implementation (one process or thread per GPU, `cudarc::nccl`) implements the same
//! trait: every method is a blocking collective call that all ranks make in the same order with
//! tensors of the same shapes and dtypes.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use candle_core::Tensor;

use crate::{Error, Result};

/// One rank's handle on a group of data-parallel replicas.
///
/// Every rank calls the same collectives in the same order, with lists of the same length whose
/// tensors have the same shapes and dtypes rank by rank; each call returns once every rank has
/// made it. A rank that fails calls [`Collective::abort`], after which every pending and future
/// call of every rank returns [`Error::ReplicaFailed`] instead of waiting forever.
///
/// The trait is object safe and `Send`, so a `Box<dyn Collective>` can be moved to the thread
/// (or process) that drives its replica.
pub trait Collective: Send {
    /// This replica's rank, `0..world_size()`.
    fn rank(&self) -> usize;

    /// Number of replicas.
    fn world_size(&self) -> usize;

    /// Element-wise sums over the ranks of every tensor of `tensors`, in the same order, each on
    /// its input's device and in its dtype (accumulated in that dtype). Every rank receives
    /// the same values.
    fn all_reduce_sum(&mut self, tensors: &[Tensor]) -> Result<Vec<Tensor>>;

    /// [`Collective::all_reduce_sum`] divided by the world size (floating-point tensors).
    fn all_reduce_mean(&mut self, tensors: &[Tensor]) -> Result<Vec<Tensor>> {
        let world = self.world_size() as f64;
        self.all_reduce_sum(tensors)?.into_iter().map(|t| Ok((t / world)?)).collect()
    }

    /// Rank 0's `tensors`, on every rank (each on its input's device, in its dtype); the other
    /// ranks' values are ignored but their shapes must match.
    fn broadcast(&mut self, tensors: &[Tensor]) -> Result<Vec<Tensor>>;

    /// Returns once every rank has called it.
    fn barrier(&mut self) -> Result<()>;

    /// Ends the group after a failure on this rank: every rank's pending and later calls fail
    /// with [`Error::ReplicaFailed`] naming this rank and `reason`. Aborting twice, or after
    /// another rank did, keeps the first failure.
    fn abort(&mut self, reason: &str);
}

/// A boxed member is a member: `Learner::with_collective(Box<dyn Collective>)` works.
impl<C: Collective + ?Sized> Collective for Box<C> {
    fn rank(&self) -> usize {
        (**self).rank()
    }

    fn world_size(&self) -> usize {
        (**self).world_size()
    }

    fn all_reduce_sum(&mut self, tensors: &[Tensor]) -> Result<Vec<Tensor>> {
        (**self).all_reduce_sum(tensors)
    }

    fn all_reduce_mean(&mut self, tensors: &[Tensor]) -> Result<Vec<Tensor>> {
        (**self).all_reduce_mean(tensors)
    }

    fn broadcast(&mut self, tensors: &[Tensor]) -> Result<Vec<Tensor>> {
        (**self).broadcast(tensors)
    }

    fn barrier(&mut self) -> Result<()> {
        (**self).barrier()
    }

    fn abort(&mut self, reason: &str) {
        (**self).abort(reason)
    }
}

/// What a round of the in-process group computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Sum,
    Broadcast,
    Barrier,
}

/// The state all members of an [`InProcessGroup`] share.
struct Shared {
    world: usize,
    state: Mutex<Round>,
    changed: Condvar,
}

/// The round being filled, the last completed one's result, and any failure.
struct Round {
    /// Counts completed rounds; a member waits until it moves past the round it joined.
    generation: u64,
    op: Option<Op>,
    slots: Vec<Option<Vec<Tensor>>>,
    arrived: usize,
    /// The result of round `generation - 1`, read by its members after it completed.
    result: Option<std::result::Result<Arc<Vec<Tensor>>, String>>,
    /// The first failure: the rank that failed and why.
    failed: Option<(usize, String)>,
}

/// Replicas on threads of one process, exchanging tensors through shared memory.
///
/// [`InProcessGroup::new`] returns one [`InProcessMember`] per rank; each is moved to the thread
/// that drives that rank. Reductions sum in rank order (`((t0 + t1) + t2) + ...`, on rank 0's
/// device, in the tensors' dtype) whatever the order in which threads arrive, so results are
/// reproducible bit for bit and identical on every rank.
pub struct InProcessGroup;

impl InProcessGroup {
    /// A group of `world` ranks: its members, rank 0 first. Fails when `world` is 0.
    #[allow(clippy::new_ret_no_self)] // the group exists only through its members
    pub fn new(world: usize) -> Result<Vec<InProcessMember>> {
        if world == 0 {
            return Err(Error::Collective("a group needs at least one rank".into()));
        }
        let round = Round { generation: 0, op: None, slots: vec![None; world], arrived: 0, result: None, failed: None };
        let shared = Arc::new(Shared { world, state: Mutex::new(round), changed: Condvar::new() });
        Ok((0..world).map(|rank| InProcessMember { rank, shared: shared.clone() }).collect())
    }
}

/// One rank of an [`InProcessGroup`]. Dropping it (when its thread ends, normally or by a panic)
/// leaves the group: later collectives of the other ranks fail instead of waiting for it.
pub struct InProcessMember {
    rank: usize,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for InProcessMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessMember").field("rank", &self.rank).field("world", &self.shared.world).finish()
    }
}

impl InProcessMember {
    fn lock(&self) -> MutexGuard<'_, Round> {
        // The state is only written under the lock by code that cannot panic halfway through a
        // round's bookkeeping; a poisoned lock means another member's thread panicked, which
        // its Drop reports as a failure.
        self.shared.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Joins the current round with `tensors`, waits for it to complete, and returns its result
    /// (each tensor moved to the device of this rank's corresponding input).
    fn round(&mut self, op: Op, tensors: &[Tensor]) -> Result<Vec<Tensor>> {
        let mut state = self.lock();
        if let Some((rank, reason)) = &state.failed {
            return Err(Error::ReplicaFailed { rank: *rank, reason: reason.clone() });
        }
        if let Some(other) = state.op.filter(|o| *o != op) {
            let reason = format!("rank {} called {op:?} while other ranks called {other:?}", self.rank);
            state.failed = Some((self.rank, reason.clone()));
            self.shared.changed.notify_all();
            return Err(Error::Collective(reason));
        }
        state.op = Some(op);
        state.slots[self.rank] = Some(tensors.to_vec());
        state.arrived += 1;
        let joined = state.generation;
        if state.arrived == self.shared.world {
            let slots: Vec<Vec<Tensor>> = state.slots.iter_mut().filter_map(Option::take).collect();
            state.result = Some(combine(op, slots).map(Arc::new).map_err(|e| e.to_string()));
            state.arrived = 0;
            state.op = None;
            state.generation += 1;
            self.shared.changed.notify_all();
        } else {
            // A completed round is read even when a failure came after it: every rank that
            // joined it made the call, so its result is valid.
            while state.generation == joined && state.failed.is_none() {
                state = self.shared.changed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            if state.generation == joined {
                let (rank, reason) = state.failed.clone().unwrap_or_default();
                return Err(Error::ReplicaFailed { rank, reason });
            }
        }
        let result = match &state.result {
            Some(Ok(result)) => result.clone(),
            Some(Err(reason)) => {
                let reason = reason.clone();
                state.failed.get_or_insert((self.rank, reason.clone()));
                self.shared.changed.notify_all();
                return Err(Error::Collective(reason));
            }
            None => return Err(Error::Collective("a completed round left no result".into())),
        };
        drop(state);
        result.iter().zip(tensors).map(|(r, mine)| Ok(r.to_device(mine.device())?)).collect()
    }
}

/// The result of a round from every rank's tensors, in rank order.
fn combine(op: Op, slots: Vec<Vec<Tensor>>) -> Result<Vec<Tensor>> {
    let first = &slots[0];
    for (rank, tensors) in slots.iter().enumerate().skip(1) {
        if tensors.len() != first.len() {
            return Err(Error::Collective(format!(
                "{op:?}: rank 0 gave {} tensors but rank {rank} gave {}",
                first.len(),
                tensors.len()
            )));
        }
        for (i, (a, b)) in first.iter().zip(tensors).enumerate() {
            if a.shape() != b.shape() || a.dtype() != b.dtype() {
                return Err(Error::Collective(format!(
                    "{op:?}: tensor {i} is {:?} {:?} on rank 0 but {:?} {:?} on rank {rank}",
                    a.dtype(),
                    a.dims(),
                    b.dtype(),
                    b.dims()
                )));
            }
        }
    }
    match op {
        Op::Barrier | Op::Broadcast => Ok(first.clone()),
        Op::Sum => (0..first.len())
            .map(|i| {
                let mut sum = first[i].clone();
                for tensors in &slots[1..] {
                    sum = (sum + tensors[i].to_device(first[i].device())?)?;
                }
                Ok(sum)
            })
            .collect(),
    }
}

impl Collective for InProcessMember {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.shared.world
    }

    fn all_reduce_sum(&mut self, tensors: &[Tensor]) -> Result<Vec<Tensor>> {
        self.round(Op::Sum, tensors)
    }

    fn broadcast(&mut self, tensors: &[Tensor]) -> Result<Vec<Tensor>> {
        self.round(Op::Broadcast, tensors)
    }

    fn barrier(&mut self) -> Result<()> {
        self.round(Op::Barrier, &[]).map(|_| ())
    }

    fn abort(&mut self, reason: &str) {
        let mut state = self.lock();
        state.failed.get_or_insert_with(|| (self.rank, reason.to_string()));
        self.shared.changed.notify_all();
    }
}

impl Drop for InProcessMember {
    fn drop(&mut self) {
        // A completed round stays readable (see `round`), so this only fails calls that would
        // otherwise wait forever for this rank.
        let reason = if std::thread::panicking() { "its thread panicked" } else { "it left the group" };
        self.abort(reason);
    }
}
