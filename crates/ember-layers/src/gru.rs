//! Gated recurrent unit layers (PyTorch's `nn.GRU`).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::recurrent::{recurrent_layer, Cell, Recurrent, RecurrentConfig, RecurrentOutput};

/// A multi-layer, optionally bidirectional GRU with PyTorch's gate order (`r, z, n`), its
/// `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`, and its parameter names (`weight_ih_l0`,
/// `weight_hh_l0_reverse`, ...).
///
/// # Shapes
/// - input: `(seq, b, input_size)`, or `(b, seq, input_size)` when batch-first
/// - `h0`: `(L*D, b, H)`
/// - output: see [`RecurrentOutput`] (`c_n` is `None`); [`Module::forward`](candle_nn::Module::forward)
///   returns only `output`
#[derive(Debug, Clone)]
pub struct Gru {
    inner: Recurrent,
}

impl Gru {
    /// Reads or creates the stack's parameters under `vb`.
    pub fn new(cfg: &RecurrentConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self { inner: Recurrent::new(cfg, Cell::Gru, vb)? })
    }

    /// Runs the whole sequence from the initial hidden state (zeros when `None`); returns every
    /// output and the final `h_n`.
    pub fn forward_with_state(&self, xs: &Tensor, h0: Option<&Tensor>) -> Result<RecurrentOutput> {
        self.inner.run(xs, h0, None)
    }
}

recurrent_layer!(Gru);
