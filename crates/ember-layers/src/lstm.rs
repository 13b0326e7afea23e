//! Long short-term memory layers (PyTorch's `nn.LSTM`).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::recurrent::{recurrent_layer, Cell, Recurrent, RecurrentConfig, RecurrentOutput};

/// A multi-layer, optionally bidirectional LSTM with PyTorch's gate order (`i, f, g, o`) and
/// parameter names (`weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`,
/// `weight_ih_l0_reverse`, ...), so PyTorch checkpoints load as they are.
///
/// # Shapes
/// - input: `(seq, b, input_size)`, or `(b, seq, input_size)` when batch-first
/// - `h0`, `c0`: `(L*D, b, H)`
/// - output: see [`RecurrentOutput`]; [`Module::forward`](candle_nn::Module::forward)
///   returns only `output`
#[derive(Debug, Clone)]
pub struct Lstm {
    inner: Recurrent,
}

impl Lstm {
    /// Reads or creates the stack's parameters under `vb`.
    pub fn new(cfg: &RecurrentConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self { inner: Recurrent::new(cfg, Cell::Lstm, vb)? })
    }

    /// Runs the whole sequence from the initial hidden and cell states (zeros when `None`);
    /// returns every output and the final `h_n`, `c_n`.
    pub fn forward_with_state(&self, xs: &Tensor, h0: Option<&Tensor>, c0: Option<&Tensor>) -> Result<RecurrentOutput> {
        self.inner.run(xs, h0, c0)
    }
}

recurrent_layer!(Lstm);
