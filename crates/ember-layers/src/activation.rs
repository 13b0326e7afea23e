//! Element-wise activation functions, and softmax / log-softmax along a dimension.

use candle_core::{Result, Tensor};
use candle_nn::Module;
use ember_kernels::FusedActivation;

/// A non-linearity without parameters, as PyTorch's activation modules.
///
/// # Shapes
/// - input: any shape (`Softmax`/`LogSoftmax`: at least `dim + 1` dimensions)
/// - output: the input's shape
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x` for `x >= 0`, `slope * x` otherwise (PyTorch's default slope is 0.01).
    LeakyRelu(f64),
    /// `x` for `x > 0`, `alpha * (e^x - 1)` otherwise (PyTorch's default alpha is 1).
    Elu(f64),
    /// `x * Φ(x)` with the exact normal CDF (PyTorch's `GELU()`).
    Gelu,
    /// The tanh approximation of GELU (PyTorch's `GELU(approximate="tanh")`).
    GeluTanh,
    /// `x * sigmoid(x)` (a.k.a. swish).
    Silu,
    /// `x * relu6(x + 3) / 6`.
    HardSwish,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// Softmax along the given dimension.
    Softmax(usize),
    /// Log-softmax along the given dimension.
    LogSoftmax(usize),
    /// The identity.
    Identity,
}

impl Module for Activation {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match *self {
            Activation::Relu => ember_kernels::activate(xs, FusedActivation::Relu),
            Activation::Relu6 => ember_kernels::activate(xs, FusedActivation::Relu6),
            // (1 - a) relu(x) + a x: x for x >= 0, a x otherwise, for any slope a.
            Activation::LeakyRelu(slope) => xs.relu()?.affine(1.0 - slope, 0.0)? + xs.affine(slope, 0.0)?,
            Activation::Elu(alpha) => xs.elu(alpha),
            // Composed from `erf` rather than candle's `gelu_erf`, whose backward rounds
            // 1/sqrt(2π) to 0.398942 (gradients off by up to ~2e-5 relative).
            Activation::Gelu => (xs * ((xs / std::f64::consts::SQRT_2)?.erf()? + 1.0)?)? * 0.5,
            // Composed for the same reason: candle's `gelu` backward uses rounded constants.
            Activation::GeluTanh => {
                let inner =
                    (xs + xs.powf(3.0)?.affine(0.044715, 0.0)?)?.affine((2.0 / std::f64::consts::PI).sqrt(), 0.0)?;
                (xs * (inner.tanh()? + 1.0)?)? * 0.5
            }
            Activation::Silu => xs.silu(),
            Activation::HardSwish => xs * (xs + 3.0)?.relu()?.minimum(6.0)?.affine(1.0 / 6.0, 0.0)?,
            Activation::Sigmoid => candle_nn::ops::sigmoid(xs),
            Activation::Tanh => xs.tanh(),
            Activation::Softmax(dim) | Activation::LogSoftmax(dim) => {
                if dim >= xs.rank() {
                    candle_core::bail!("{self:?}: dim {dim} out of range for input of shape {:?}", xs.dims())
                }
                if matches!(self, Activation::Softmax(_)) {
                    candle_nn::ops::softmax(xs, dim)
                } else {
                    candle_nn::ops::log_softmax(xs, dim)
                }
            }
            Activation::Identity => Ok(xs.clone()),
        }
    }
}
