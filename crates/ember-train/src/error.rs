//! The training crate's error type.

use std::path::PathBuf;

/// What can go wrong while training, evaluating or handling checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] ember_io::IoError),
    /// A tensor holds NaN or infinities: refused by checkpoint writers and loaders.
    #[error("{path}: tensor `{name}` holds NaN or infinite values; refusing to write or load it")]
    NonFiniteTensor {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor name.
        name: String,
    },
    /// A checkpoint tensor has a dtype that cannot become the model's (integers into floats).
    #[error("{path}: tensor `{name}` is {found:?}, but the model's is {expected:?}")]
    WrongDtype {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// Dtype in the file.
        found: candle_core::DType,
        /// Dtype of the model tensor.
        expected: candle_core::DType,
    },
    /// A file ember wrote (a TensorBoard event file) is damaged or not what was committed.
    #[error("{path}: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        detail: String,
    },
    /// Drawing a plot failed.
    #[error("{path}: drawing the plot: {detail}")]
    Plot {
        /// The PNG being drawn.
        path: PathBuf,
        /// The plotting library's message.
        detail: String,
    },
    /// The checkpoint lacks a tensor the model needs.
    #[error("{path}: checkpoint has no tensor `{name}` that the model needs")]
    MissingTensor {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor name.
        name: String,
    },
    /// The checkpoint holds a tensor the model does not have.
    #[error("{path}: checkpoint tensor `{name}` matches no model parameter")]
    UnexpectedTensor {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor name.
        name: String,
    },
    /// A checkpoint tensor has the wrong shape.
    #[error("{path}: tensor `{name}` has shape {found:?} but the model needs {expected:?}")]
    ShapeMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// Shape the model needs.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// The loss became NaN or infinite: training stopped before the diverged weights could be
    /// saved.
    #[error(
        "training diverged at epoch {epoch}, {}: the {} loss is {loss} (learning rate {learning_rate:e}); \
         a lower learning rate or gradient clipping usually fixes this",
        batch.map_or_else(|| "after its last batch".to_string(), |b| format!("batch {b}")),
        if batch.is_some() { "training" } else { "validation" }
    )]
    NonFiniteLoss {
        /// 1-based epoch.
        epoch: usize,
        /// 0-based batch within the epoch; `None` for the validation loss.
        batch: Option<usize>,
        /// The loss value.
        loss: f64,
        /// The learning rate of the step that produced it.
        learning_rate: f64,
    },
    /// The parameters became NaN or infinite although the losses seen were finite (the last
    /// step of an epoch without validation).
    #[error(
        "training diverged at epoch {epoch}: parameter `{name}` holds NaN or infinite values (learning rate \
         {learning_rate:e}); a lower learning rate or gradient clipping usually fixes this"
    )]
    NonFiniteParameter {
        /// 1-based epoch.
        epoch: usize,
        /// The parameter.
        name: String,
        /// The learning rate of the last step.
        learning_rate: f64,
    },
    /// Data-parallel replicas disagree (on the collective called, on tensor shapes, on the
    /// number of batches or epochs), or a collective operation failed.
    #[error("data-parallel: {0}")]
    Collective(String),
    /// Another data-parallel replica failed (or left the group), so this one stopped rather
    /// than wait for it forever.
    #[error("data-parallel: replica {rank} failed: {reason}")]
    ReplicaFailed {
        /// The rank that failed first.
        rank: usize,
        /// Its error.
        reason: String,
    },
    /// A rendezvous variable (`WORLD_SIZE`, `RANK`, `MASTER_ADDR`, ...) is not set.
    #[error("environment variable {variable} is not set; {hint}")]
    MissingVariable {
        /// The variable.
        variable: &'static str,
        /// What it should hold.
        hint: &'static str,
    },
    /// A rendezvous variable holds a value that cannot be used.
    #[error("environment variable {variable}={value:?}: {problem}")]
    BadVariable {
        /// The variable.
        variable: &'static str,
        /// Its value, as set.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A network operation of a multi-process group failed: joining it (binding, connecting,
    /// the handshake) or exchanging messages with a peer.
    #[error("data-parallel: {what} ({peer}): {detail}")]
    Network {
        /// The address or rank at the other end.
        peer: String,
        /// What was being done.
        what: String,
        /// The system's or the protocol's reason.
        detail: String,
    },
    /// A misuse of the training API or an invalid setting.
    #[error("{0}")]
    Invalid(String),
    /// A checkpoint file could not be read or written for a reason of its format: ember-io's
    /// error as it is (`UnreadableCheckpoint`, `WriteCheckpoint`, a PyTorch file's pickle, a
    /// renaming rule); its I/O failures are [`Error::Io`].
    #[error(transparent)]
    Checkpoint(ember_io::Error),
    /// Reading data failed.
    #[error(transparent)]
    Data(#[from] ember_data::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// ember-io's I/O and tensor failures become ember-train's own `Io` and `Tensor`, so a caller
/// matches one variant for each whichever crate failed; the rest stay ember-io's.
impl From<ember_io::Error> for Error {
    fn from(e: ember_io::Error) -> Self {
        match e {
            ember_io::Error::Io(e) => Error::Io(e),
            ember_io::Error::Tensor(e) => Error::Tensor(e),
            other => Error::Checkpoint(other),
        }
    }
}

/// Result with the training [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
