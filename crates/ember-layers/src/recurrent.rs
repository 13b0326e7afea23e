//! The machinery shared by [`crate::Rnn`], [`crate::Lstm`] and [`crate::Gru`]: configuration,
//! PyTorch's parameter layout, and the multi-layer, bidirectional unrolled loop.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use ember_kernels::init::Init;

use crate::weight_init::candle_init;
use crate::{Entry, EntryMut, ModulePath, Param};

/// Configuration of a recurrent layer stack (PyTorch's `nn.RNN`/`nn.LSTM`/`nn.GRU` arguments;
/// inter-layer dropout is not supported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecurrentConfig {
    /// Features of each input step.
    pub input_size: usize,
    /// Features of the hidden state `H`.
    pub hidden_size: usize,
    /// Stacked layers `L`; layer `l > 0` reads the outputs of layer `l - 1`.
    pub num_layers: usize,
    /// Whether each layer also runs backwards in time (`D = 2`) and concatenates both outputs.
    pub bidirectional: bool,
    /// Input and output are `(batch, seq, features)` instead of `(seq, batch, features)`.
    pub batch_first: bool,
    /// Whether the layers have the biases `bias_ih_l*` and `bias_hh_l*`.
    pub bias: bool,
}

impl RecurrentConfig {
    /// One unidirectional layer, sequence-first, with biases (PyTorch's defaults).
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        Self { input_size, hidden_size, num_layers: 1, bidirectional: false, batch_first: false, bias: true }
    }

    fn directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }
}

/// What a recurrent layer returns, as PyTorch's `(output, h_n)` / `(output, (h_n, c_n))`.
#[derive(Debug, Clone)]
pub struct RecurrentOutput {
    /// The last layer's hidden state at every step, both directions concatenated:
    /// `(seq, b, D*H)`, or `(b, seq, D*H)` when batch-first.
    pub output: Tensor,
    /// Final hidden state of every layer and direction: `(L*D, b, H)`, ordered
    /// `l0, l0_reverse, l1, ...`.
    pub h_n: Tensor,
    /// Final cell state `(L*D, b, H)` (LSTM only).
    pub c_n: Option<Tensor>,
}

/// Which recurrence a [`Recurrent`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cell {
    /// `h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`.
    RnnTanh,
    /// `h' = relu(W_ih x + b_ih + W_hh h + b_hh)`.
    RnnRelu,
    /// Gates `i, f, g, o` in that order.
    Lstm,
    /// Gates `r, z, n` in that order.
    Gru,
}

impl Cell {
    fn gates(self) -> usize {
        match self {
            Cell::RnnTanh | Cell::RnnRelu => 1,
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Cell::RnnTanh | Cell::RnnRelu => "rnn",
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
        }
    }
}

/// One direction of one layer.
#[derive(Debug, Clone)]
struct Weights {
    /// `l{l}` or `l{l}_reverse`, as PyTorch suffixes the names.
    suffix: String,
    w_ih: Param,
    w_hh: Param,
    b_ih: Option<Param>,
    b_hh: Option<Param>,
}

/// A stack of recurrent layers with PyTorch's parameter names.
#[derive(Debug, Clone)]
pub(crate) struct Recurrent {
    name: String,
    cfg: RecurrentConfig,
    cell: Cell,
    /// `layers[l * D + d]`.
    layers: Vec<Weights>,
}

impl Recurrent {
    /// Reads or creates `{vb}.weight_ih_l{l}{_reverse}` `(G*H, in)`, `weight_hh_l*` `(G*H, H)`,
    /// `bias_ih_l*`, `bias_hh_l*` `(G*H,)`, all `U(-1/sqrt(H), 1/sqrt(H))` as in PyTorch.
    pub(crate) fn new(cfg: &RecurrentConfig, cell: Cell, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden_size;
        if h == 0 || cfg.input_size == 0 || cfg.num_layers == 0 {
            candle_core::bail!("{} `{}`: sizes and layer count must be positive, got {cfg:?}", cell.kind(), vb.prefix())
        }
        let init = candle_init(Init::pytorch_recurrent_default(h));
        let gh = cell.gates() * h;
        let mut layers = Vec::new();
        for l in 0..cfg.num_layers {
            let input = if l == 0 { cfg.input_size } else { h * cfg.directions() };
            for d in 0..cfg.directions() {
                let suffix = if d == 0 { format!("l{l}") } else { format!("l{l}_reverse") };
                let w_ih = vb.get_with_hints((gh, input), &format!("weight_ih_{suffix}"), init)?;
                let w_hh = vb.get_with_hints((gh, h), &format!("weight_hh_{suffix}"), init)?;
                let (b_ih, b_hh) = if cfg.bias {
                    (
                        Some(vb.get_with_hints(gh, &format!("bias_ih_{suffix}"), init)?),
                        Some(vb.get_with_hints(gh, &format!("bias_hh_{suffix}"), init)?),
                    )
                } else {
                    (None, None)
                };
                let (w_ih, w_hh, b_ih, b_hh) =
                    (Param::new(w_ih), Param::new(w_hh), b_ih.map(Param::new), b_hh.map(Param::new));
                layers.push(Weights { suffix, w_ih, w_hh, b_ih, b_hh });
            }
        }
        Ok(Self { name: vb.prefix(), cfg: *cfg, cell, layers })
    }

    pub(crate) fn config(&self) -> &RecurrentConfig {
        &self.cfg
    }

    /// Reports the parameters in PyTorch's order (layer, direction, then `weight_ih`,
    /// `weight_hh`, `bias_ih`, `bias_hh`) for the [`crate::ModuleTree`] of `Rnn`/`Lstm`/`Gru`.
    pub(crate) fn visit_params<'a>(&'a self, path: &mut ModulePath, f: &mut dyn FnMut(&str, Entry<'a>)) {
        for w in &self.layers {
            let s = &w.suffix;
            path.child(&format!("weight_ih_{s}"), &w.w_ih, f);
            path.child(&format!("weight_hh_{s}"), &w.w_hh, f);
            path.child(&format!("bias_ih_{s}"), &w.b_ih, f);
            path.child(&format!("bias_hh_{s}"), &w.b_hh, f);
        }
    }

    /// [`Recurrent::visit_params`], mutably.
    pub(crate) fn visit_params_mut(&mut self, path: &mut ModulePath, f: &mut dyn FnMut(&str, EntryMut<'_>)) {
        for w in &mut self.layers {
            let s = &w.suffix;
            path.child_mut(&format!("weight_ih_{s}"), &mut w.w_ih, f);
            path.child_mut(&format!("weight_hh_{s}"), &mut w.w_hh, f);
            path.child_mut(&format!("bias_ih_{s}"), &mut w.b_ih, f);
            path.child_mut(&format!("bias_hh_{s}"), &mut w.b_hh, f);
        }
    }

    fn check_state(&self, what: &str, state: Option<&Tensor>, b: usize) -> Result<()> {
        let expected = [self.cfg.num_layers * self.cfg.directions(), b, self.cfg.hidden_size];
        match state {
            Some(s) if s.dims() != expected => candle_core::bail!(
                "{} `{}`: expected {what} of shape {expected:?}, got {:?}",
                self.cell.kind(),
                self.name,
                s.dims()
            ),
            _ => Ok(()),
        }
    }

    /// Runs the stack over a whole sequence from the optional initial states (zeros otherwise).
    pub(crate) fn run(&self, xs: &Tensor, h0: Option<&Tensor>, c0: Option<&Tensor>) -> Result<RecurrentOutput> {
        let (kind, cfg) = (self.cell.kind(), &self.cfg);
        let layout = if cfg.batch_first { "(batch, seq, features)" } else { "(seq, batch, features)" };
        let xs = match xs.dims() {
            [_, _, f] if *f == cfg.input_size => {
                if cfg.batch_first {
                    xs.transpose(0, 1)?
                } else {
                    xs.clone()
                }
            }
            dims => candle_core::bail!(
                "{kind} `{}`: expected input {layout} with {} features, got {dims:?}",
                self.name,
                cfg.input_size
            ),
        };
        let (seq, b, _) = xs.dims3()?;
        self.check_state("h0", h0, b)?;
        self.check_state("c0", c0, b)?;
        let (hs, dirs) = (cfg.hidden_size, cfg.directions());
        let zeros = Tensor::zeros((b, hs), xs.dtype(), xs.device())?;
        let initial = |state: Option<&Tensor>, k: usize| match state {
            Some(s) => s.get(k),
            None => Ok(zeros.clone()),
        };
        let mut input = xs;
        let (mut h_n, mut c_n) = (Vec::new(), Vec::new());
        for l in 0..cfg.num_layers {
            let mut outputs = Vec::with_capacity(dirs);
            for d in 0..dirs {
                let k = l * dirs + d;
                let w = &self.layers[k];
                let in_features = input.dim(2)?;
                // Input projections for every step at once: (seq, b, G*H).
                let mut xw = input.reshape((seq * b, in_features))?.matmul(&w.w_ih.value()?.t()?)?;
                if let Some(b_ih) = &w.b_ih {
                    xw = xw.broadcast_add(&b_ih.value()?)?;
                }
                let xw = xw.reshape((seq, b, self.cell.gates() * hs))?;
                let w_hh_t = w.w_hh.value()?.t()?;
                let b_hh = w.b_hh.as_ref().map(Param::value).transpose()?;
                let mut h = initial(h0, k)?;
                let mut c = initial(c0, k)?;
                let mut steps = vec![None; seq];
                for i in 0..seq {
                    let t = if d == 0 { i } else { seq - 1 - i };
                    let mut hw = h.matmul(&w_hh_t)?;
                    if let Some(b_hh) = &b_hh {
                        hw = hw.broadcast_add(b_hh)?;
                    }
                    (h, c) = self.step(&xw.get(t)?, &hw, &h, &c)?;
                    steps[t] = Some(h.clone());
                }
                let steps: Vec<Tensor> = steps.into_iter().flatten().collect();
                outputs.push(Tensor::stack(&steps, 0)?);
                h_n.push(h);
                c_n.push(c);
            }
            input = Tensor::cat(&outputs, 2)?;
        }
        let output = if cfg.batch_first { input.transpose(0, 1)?.contiguous()? } else { input };
        let c_n = if self.cell == Cell::Lstm { Some(Tensor::stack(&c_n, 0)?) } else { None };
        Ok(RecurrentOutput { output, h_n: Tensor::stack(&h_n, 0)?, c_n })
    }

    /// One time step: `(h', c')` from the input projection `xw`, the hidden projection `hw` and
    /// the previous `(h, c)` (`c` is carried unchanged except by the LSTM).
    fn step(&self, xw: &Tensor, hw: &Tensor, h: &Tensor, c: &Tensor) -> Result<(Tensor, Tensor)> {
        let hs = self.cfg.hidden_size;
        let sigmoid = candle_nn::ops::sigmoid;
        match self.cell {
            Cell::RnnTanh => Ok(((xw + hw)?.tanh()?, c.clone())),
            Cell::RnnRelu => Ok(((xw + hw)?.relu()?, c.clone())),
            Cell::Lstm => {
                let g = (xw + hw)?;
                let i = sigmoid(&g.narrow(1, 0, hs)?)?;
                let f = sigmoid(&g.narrow(1, hs, hs)?)?;
                let cand = g.narrow(1, 2 * hs, hs)?.tanh()?;
                let o = sigmoid(&g.narrow(1, 3 * hs, hs)?)?;
                let c = ((f * c)? + (i * cand)?)?;
                let h = (o * c.tanh()?)?;
                Ok((h, c))
            }
            Cell::Gru => {
                let r = sigmoid(&(xw.narrow(1, 0, hs)? + hw.narrow(1, 0, hs)?)?)?;
                let z = sigmoid(&(xw.narrow(1, hs, hs)? + hw.narrow(1, hs, hs)?)?)?;
                let n = (xw.narrow(1, 2 * hs, hs)? + (r * hw.narrow(1, 2 * hs, hs)?)?)?.tanh()?;
                // (1 - z) * n + z * h
                let h = (&n + (z * (h - &n)?)?)?;
                Ok((h, c.clone()))
            }
        }
    }
}

/// What [`crate::Rnn`], [`crate::Lstm`] and [`crate::Gru`] (each a `Recurrent` named `inner`) have
/// alike: `config()`, a [`candle_nn::Module`] that runs from zero states and returns the outputs,
/// and a [`crate::ModuleTree`] entry of the layer kind of the same name.
macro_rules! recurrent_layer {
    ($layer:ident) => {
        impl $layer {
            /// The layer's configuration.
            pub fn config(&self) -> &$crate::RecurrentConfig {
                self.inner.config()
            }
        }

        impl candle_nn::Module for $layer {
            fn forward(&self, xs: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
                Ok(self.inner.run(xs, None, None)?.output)
            }
        }

        impl $crate::ModuleTree for $layer {
            fn visit_at<'a>(&'a self, path: &mut $crate::ModulePath, f: &mut dyn FnMut(&str, $crate::Entry<'a>)) {
                f(path.as_str(), $crate::Entry::Layer($crate::LayerKind::$layer));
                self.inner.visit_params(path, f);
            }

            fn visit_mut_at(&mut self, path: &mut $crate::ModulePath, f: &mut dyn FnMut(&str, $crate::EntryMut<'_>)) {
                f(path.as_str(), $crate::EntryMut::Layer($crate::LayerKind::$layer, Some(self)));
                self.inner.visit_params_mut(path, f);
            }
        }
    };
}
pub(crate) use recurrent_layer;
