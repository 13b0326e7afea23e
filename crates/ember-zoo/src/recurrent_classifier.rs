//! LSTM and GRU sequence classifiers ("sequential MNIST": image rows as time steps).

use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};
use ember_layers::{Entry, EntryMut, Gru, LayerKind, Linear, Lstm, ModulePath, ModuleTree, RecurrentConfig};

use crate::network::{tapped, Layered, Tap};

/// Which recurrent cell a [`RecurrentClassifier`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    /// Long short-term memory (Hochreiter and Schmidhuber, 1997).
    Lstm,
    /// Gated recurrent unit (Cho et al., 2014).
    Gru,
}

/// Configuration for [`RecurrentClassifier`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecurrentClassifierConfig {
    /// LSTM or GRU.
    pub cell: CellKind,
    /// Features per time step (`c * w` for an image read row by row).
    pub input_size: usize,
    /// Hidden units per direction.
    pub hidden_size: usize,
    /// Stacked recurrent layers.
    pub num_layers: usize,
    /// Whether each layer also reads the sequence backwards.
    pub bidirectional: bool,
    /// Output classes.
    pub classes: usize,
}

impl RecurrentClassifierConfig {
    /// One layer of 128 hidden units per direction.
    pub fn new(cell: CellKind, input_size: usize, classes: usize, bidirectional: bool) -> Self {
        Self { cell, input_size, hidden_size: 128, num_layers: 1, bidirectional, classes }
    }
}

#[derive(Debug, Clone)]
enum Rnn {
    Lstm(Lstm),
    Gru(Gru),
}

/// A recurrent network that reads an image one row per time step and classifies it from the
/// final hidden state(s): for a bidirectional network, the last layer's forward state after the
/// last row and its backward state after the first row, concatenated, then a linear layer.
/// LSTM after Hochreiter and Schmidhuber, "Long short-term memory" (Neural Computation, 1997);
/// GRU after Cho et al., "Learning phrase representations using RNN encoder-decoder" (EMNLP
/// 2014); bidirectional after Schuster and Paliwal (IEEE TSP, 1997); row-by-row MNIST as in Le,
/// Jaitly and Hinton's sequential MNIST benchmark (2015).
///
/// Parameters: `lstm.weight_ih_l0`, `lstm.weight_hh_l0`, `lstm.bias_ih_l0`, `lstm.bias_hh_l0`,
/// `lstm.*_l0_reverse` (`gru.*` for a GRU) and `fc.{weight,bias}`, as a PyTorch module with
/// `self.lstm = nn.LSTM(..., batch_first=True)` and `self.fc = nn.Linear(...)`.
///
/// # Shapes
/// - input: `(b, c, h, w)` images (h time steps of `c * w` features) or `(b, seq, input_size)`
/// - output: `(b, classes)` logits
#[derive(Debug, Clone)]
pub struct RecurrentClassifier {
    cfg: RecurrentClassifierConfig,
    rnn: Rnn,
    fc: Linear,
}

impl RecurrentClassifier {
    /// Reads or creates the parameters under `vb`.
    pub fn new(cfg: &RecurrentClassifierConfig, vb: VarBuilder) -> Result<Self> {
        let rc = RecurrentConfig {
            num_layers: cfg.num_layers,
            bidirectional: cfg.bidirectional,
            batch_first: true,
            ..RecurrentConfig::new(cfg.input_size, cfg.hidden_size)
        };
        let rnn = match cfg.cell {
            CellKind::Lstm => Rnn::Lstm(Lstm::new(&rc, vb.pp("lstm"))?),
            CellKind::Gru => Rnn::Gru(Gru::new(&rc, vb.pp("gru"))?),
        };
        let directions = if cfg.bidirectional { 2 } else { 1 };
        let fc = Linear::new(directions * cfg.hidden_size, cfg.classes, true, vb.pp("fc"))?;
        Ok(Self { cfg: *cfg, rnn, fc })
    }
}

/// The recurrent stack is `lstm` or `gru`, whichever the cell is, then `fc`.
impl ModuleTree for RecurrentClassifier {
    fn visit_at<'a>(&'a self, path: &mut ModulePath, f: &mut dyn FnMut(&str, Entry<'a>)) {
        f(path.as_str(), Entry::Layer(LayerKind::Module("RecurrentClassifier")));
        match &self.rnn {
            Rnn::Lstm(l) => path.child("lstm", l, f),
            Rnn::Gru(g) => path.child("gru", g, f),
        }
        path.child("fc", &self.fc, f);
    }

    fn visit_mut_at(&mut self, path: &mut ModulePath, f: &mut dyn FnMut(&str, EntryMut<'_>)) {
        f(path.as_str(), EntryMut::Layer(LayerKind::Module("RecurrentClassifier"), Some(self)));
        match &mut self.rnn {
            Rnn::Lstm(l) => path.child_mut("lstm", l, f),
            Rnn::Gru(g) => path.child_mut("gru", g, f),
        }
        path.child_mut("fc", &mut self.fc, f);
    }
}

impl Layered for RecurrentClassifier {
    fn forward_tapped(&self, xs: &Tensor, _train: bool, tap: Tap<'_>) -> Result<Tensor> {
        let seq = match xs.dims() {
            [b, c, h, w] if c * w == self.cfg.input_size => xs.permute((0, 2, 1, 3))?.reshape((*b, *h, c * w))?,
            [_, _, f] if *f == self.cfg.input_size => xs.clone(),
            dims => candle_core::bail!(
                "recurrent classifier: expected (batch, channels, rows, columns) with channels x columns = {} or (batch, steps, {}), got {dims:?}",
                self.cfg.input_size,
                self.cfg.input_size
            ),
        };
        let seq = tapped(tap, "rows as steps", seq.contiguous()?);
        let (name, out) = match &self.rnn {
            Rnn::Lstm(l) => ("lstm", l.forward_with_state(&seq, None, None)?),
            Rnn::Gru(g) => ("gru", g.forward_with_state(&seq, None)?),
        };
        tap(name, &out.output);
        // h_n: (L*D, b, H), ordered l0, l0_reverse, l1, ...; keep the last layer's directions.
        let d = if self.cfg.bidirectional { 2 } else { 1 };
        let last = out.h_n.narrow(0, out.h_n.dim(0)? - d, d)?;
        let (_, b, h) = last.dims3()?;
        let features = tapped(tap, "final states", last.transpose(0, 1)?.reshape((b, d * h))?);
        Ok(tapped(tap, "fc", features.apply(&self.fc)?))
    }
}

impl Module for RecurrentClassifier {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_tapped(xs, false, &mut |_, _| {})
    }
}
