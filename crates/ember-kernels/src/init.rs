//! Parameter initialisers that draw from a caller-supplied, seeded RNG.
//!
//! candle's CPU random generator cannot be seeded, so ember draws initial weights itself: the
//! same seed gives the same model on every run and every thread count.

use candle_core::{DType, Device, Result, Shape, Tensor};
use rand::rngs::StdRng;
use rand::Rng;

/// How a parameter tensor is filled when it is created.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Every element equals the constant.
    Const(f64),
    /// Uniform on `[lo, hi)`.
    Uniform {
        /// Lower bound (inclusive).
        lo: f64,
        /// Upper bound (exclusive).
        hi: f64,
    },
    /// Normal with the given mean and standard deviation.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
}

impl Init {
    /// PyTorch's default for `nn.Linear` and `nn.Conv*d` weights and biases:
    /// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` (kaiming-uniform with `a = sqrt(5)` for weights).
    pub fn pytorch_default(fan_in: usize) -> Self {
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        Init::Uniform { lo: -bound, hi: bound }
    }

    /// Kaiming (He) uniform: `U(-b, b)` with `b = gain * sqrt(3 / fan_in)`.
    pub fn kaiming_uniform(fan_in: usize, gain: f64) -> Self {
        let bound = gain * (3.0 / fan_in.max(1) as f64).sqrt();
        Init::Uniform { lo: -bound, hi: bound }
    }

    /// Xavier (Glorot) uniform: `U(-b, b)` with `b = gain * sqrt(6 / (fan_in + fan_out))`.
    pub fn xavier_uniform(fan_in: usize, fan_out: usize, gain: f64) -> Self {
        let bound = gain * (6.0 / (fan_in + fan_out).max(1) as f64).sqrt();
        Init::Uniform { lo: -bound, hi: bound }
    }

    /// Every element zero (PyTorch's default for biases of norm layers).
    pub fn zeros() -> Self {
        Init::Const(0.0)
    }

    /// Every element one (PyTorch's default for the scale of norm layers).
    pub fn ones() -> Self {
        Init::Const(1.0)
    }

    /// Kaiming (He) normal: `N(0, std²)` with `std = gain / sqrt(fan_in)`.
    pub fn kaiming_normal(fan_in: usize, gain: f64) -> Self {
        Init::Normal { mean: 0.0, std: gain / (fan_in.max(1) as f64).sqrt() }
    }

    /// Xavier (Glorot) normal: `N(0, std²)` with `std = gain * sqrt(2 / (fan_in + fan_out))`.
    pub fn xavier_normal(fan_in: usize, fan_out: usize, gain: f64) -> Self {
        Init::Normal { mean: 0.0, std: gain * (2.0 / (fan_in + fan_out).max(1) as f64).sqrt() }
    }

    /// PyTorch's default for every weight and bias of `nn.RNN`, `nn.LSTM` and `nn.GRU`:
    /// `U(-1/sqrt(hidden), 1/sqrt(hidden))`.
    pub fn pytorch_recurrent_default(hidden_size: usize) -> Self {
        Self::pytorch_default(hidden_size)
    }

    /// PyTorch's default for `nn.Embedding` weights: `N(0, 1)`.
    pub fn pytorch_embedding_default() -> Self {
        Init::Normal { mean: 0.0, std: 1.0 }
    }

    /// Draws a tensor of `shape`.
    pub fn sample(&self, shape: impl Into<Shape>, dtype: DType, device: &Device, rng: &mut StdRng) -> Result<Tensor> {
        let shape = shape.into();
        let n = shape.elem_count();
        let values: Vec<f64> = match *self {
            Init::Const(c) => vec![c; n],
            Init::Uniform { lo, hi } => {
                if lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less) {
                    candle_core::bail!("uniform init: lower bound {lo} must be below upper bound {hi}")
                }
                (0..n).map(|_| rng.random_range(lo..hi)).collect()
            }
            Init::Normal { mean, std } => (0..n).map(|_| mean + std * standard_normal(rng)).collect(),
        };
        Tensor::from_vec(values, shape, device)?.to_dtype(dtype)
    }
}

/// Fan-in of a weight tensor laid out as PyTorch does: `dims[1] * prod(dims[2..])`
/// (`in_features` for a linear layer, `c_in/groups * kh * kw` for a convolution).
pub fn fan_in(shape: &Shape) -> usize {
    let dims = shape.dims();
    match dims.len() {
        0 => 1,
        1 => dims[0],
        _ => dims[1..].iter().product(),
    }
}

/// Fan-out of a weight tensor laid out as PyTorch does: `dims[0] * prod(dims[2..])`.
pub fn fan_out(shape: &Shape) -> usize {
    let dims = shape.dims();
    match dims.len() {
        0 => 1,
        1 => dims[0],
        _ => dims[0] * dims[2..].iter().product::<usize>(),
    }
}

/// PyTorch's `nn.init.calculate_gain` for the common non-linearities: `"linear"`, `"conv*"`,
/// `"sigmoid"` (1), `"tanh"` (5/3), `"relu"` (√2), `"selu"` (3/4); `None` for others.
/// `"leaky_relu"` takes its slope through [`leaky_relu_gain`].
pub fn calculate_gain(nonlinearity: &str) -> Option<f64> {
    match nonlinearity {
        "linear" | "conv1d" | "conv2d" | "conv3d" | "sigmoid" => Some(1.0),
        "tanh" => Some(5.0 / 3.0),
        "relu" => Some(2f64.sqrt()),
        "selu" => Some(0.75),
        _ => None,
    }
}

/// Gain of a leaky ReLU with negative slope `a`: `sqrt(2 / (1 + a²))`.
pub fn leaky_relu_gain(a: f64) -> f64 {
    (2.0 / (1.0 + a * a)).sqrt()
}

/// One draw from N(0, 1) by the Box–Muller transform.
fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // in (0, 1]
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn uniform_init_stays_in_bounds_and_is_seeded() {
        let init = Init::pytorch_default(25);
        let a = init.sample((1000,), DType::F32, &Device::Cpu, &mut StdRng::seed_from_u64(7)).unwrap();
        let b = init.sample((1000,), DType::F32, &Device::Cpu, &mut StdRng::seed_from_u64(7)).unwrap();
        let a = a.to_vec1::<f32>().unwrap();
        assert_eq!(a, b.to_vec1::<f32>().unwrap());
        assert!(a.iter().all(|v| (-0.2..0.2).contains(v)));
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        assert!(mean.abs() < 0.02, "mean {mean}");
    }

    #[test]
    fn normal_init_has_requested_moments() {
        let init = Init::Normal { mean: 1.0, std: 2.0 };
        let v = init.sample((20000,), DType::F64, &Device::Cpu, &mut StdRng::seed_from_u64(1)).unwrap();
        let v = v.to_vec1::<f64>().unwrap();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!((mean - 1.0).abs() < 0.05, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.05, "std {}", var.sqrt());
    }

    #[test]
    fn kaiming_and_xavier_match_pytorch_formulas() {
        // PyTorch: kaiming_uniform_(w, a=sqrt(5)) on fan_in 288 has bound 1/sqrt(288).
        let Init::Uniform { hi, .. } = Init::kaiming_uniform(288, leaky_relu_gain(5f64.sqrt())) else { panic!() };
        assert!((hi - 1.0 / 288f64.sqrt()).abs() < 1e-12);
        assert_eq!(Init::kaiming_normal(8, 2f64.sqrt()), Init::Normal { mean: 0.0, std: 0.5 });
        let Init::Normal { std, .. } = Init::xavier_normal(3, 5, 1.0) else { panic!() };
        assert!((std - 0.5).abs() < 1e-12);
        let Init::Uniform { hi, .. } = Init::xavier_uniform(3, 5, 1.0) else { panic!() };
        assert!((hi - 0.75f64.sqrt()).abs() < 1e-12);
        assert_eq!(calculate_gain("tanh"), Some(5.0 / 3.0));
        assert_eq!(calculate_gain("bogus"), None);
        assert_eq!(fan_out(&Shape::from((64, 32, 3, 3))), 576);
    }

    #[test]
    fn fan_in_follows_pytorch_layout() {
        assert_eq!(fan_in(&Shape::from((64, 32, 3, 3))), 288);
        assert_eq!(fan_in(&Shape::from((128, 1600))), 1600);
    }
}
