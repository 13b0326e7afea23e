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
    fn fan_in_follows_pytorch_layout() {
        assert_eq!(fan_in(&Shape::from((64, 32, 3, 3))), 288);
        assert_eq!(fan_in(&Shape::from((128, 1600))), 1600);
    }
}
