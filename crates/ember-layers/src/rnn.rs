//! Elman recurrent layers (PyTorch's `nn.RNN`).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::recurrent::{recurrent_layer, Cell, Recurrent, RecurrentConfig, RecurrentOutput};

/// The non-linearity of an [`Rnn`] (PyTorch's `nonlinearity` argument).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RnnNonlinearity {
    /// `tanh` (PyTorch's default).
    #[default]
    Tanh,
    /// `relu`.
    Relu,
}

/// A multi-layer, optionally bidirectional Elman RNN, `h' = act(W_ih x + b_ih + W_hh h + b_hh)`,
/// with PyTorch's parameter names (`weight_ih_l0`, `bias_hh_l1_reverse`, ...).
///
/// # Shapes
/// - input: `(seq, b, input_size)`, or `(b, seq, input_size)` when batch-first
/// - `h0`: `(L*D, b, H)`
/// - output: see [`RecurrentOutput`] (`c_n` is `None`); [`Module::forward`](candle_nn::Module::forward)
///   returns only `output`
#[derive(Debug, Clone)]
pub struct Rnn {
    inner: Recurrent,
}

impl Rnn {
    /// Reads or creates the stack's parameters under `vb`.
    pub fn new(cfg: &RecurrentConfig, nonlinearity: RnnNonlinearity, vb: VarBuilder) -> Result<Self> {
        let cell = match nonlinearity {
            RnnNonlinearity::Tanh => Cell::RnnTanh,
            RnnNonlinearity::Relu => Cell::RnnRelu,
        };
        Ok(Self { inner: Recurrent::new(cfg, cell, vb)? })
    }

    /// Runs the whole sequence from the initial hidden state (zeros when `None`); returns every
    /// output and the final `h_n`.
    pub fn forward_with_state(&self, xs: &Tensor, h0: Option<&Tensor>) -> Result<RecurrentOutput> {
        self.inner.run(xs, h0, None)
    }
}

recurrent_layer!(Rnn);
