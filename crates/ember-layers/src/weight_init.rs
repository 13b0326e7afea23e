//! Which framework's default initialisation a layer follows.

use ember_kernels::init::Init;

/// How a [`Conv2d`](crate::Conv2d) or [`Linear`](crate::Linear) layer draws its initial
/// parameters. The two defaults users arrive with differ, and after a short training run the
/// difference shows (see `docs/performance.md`: one epoch of the classic CNN on Fashion-MNIST).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WeightInit {
    /// PyTorch's `nn.Linear` / `nn.Conv2d` default: weights and biases `U(-1/√fan_in, 1/√fan_in)`.
    #[default]
    PyTorch,
    /// Keras's `Dense` / `Conv2D` default: Glorot-uniform weights
    /// (`U(-b, b)`, `b = √(6 / (fan_in + fan_out))`) and zero biases.
    Keras,
}

impl WeightInit {
    /// The weight distribution for a layer with these fans (`fan = channels x kernel area`).
    pub fn weight(self, fan_in: usize, fan_out: usize) -> Init {
        match self {
            Self::PyTorch => Init::pytorch_default(fan_in),
            Self::Keras => Init::xavier_uniform(fan_in, fan_out, 1.0),
        }
    }

    /// The bias distribution.
    pub fn bias(self, fan_in: usize) -> Init {
        match self {
            Self::PyTorch => Init::pytorch_default(fan_in),
            Self::Keras => Init::zeros(),
        }
    }
}

/// Converts an ember initialiser into the hint candle's `VarBuilder` carries.
pub(crate) fn candle_init(init: Init) -> candle_nn::Init {
    match init {
        Init::Const(c) => candle_nn::Init::Const(c),
        Init::Uniform { lo, hi } => candle_nn::Init::Uniform { lo, up: hi },
        Init::Normal { mean, std } => candle_nn::Init::Randn { mean, stdev: std },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras_weights_use_both_fans_and_zero_biases_pytorch_uses_fan_in() {
        let Init::Uniform { hi, .. } = WeightInit::Keras.weight(9, 288) else { panic!("uniform") };
        assert!((hi - (6.0f64 / 297.0).sqrt()).abs() < 1e-12);
        assert_eq!(WeightInit::Keras.bias(9), Init::Const(0.0));
        let Init::Uniform { lo, hi } = WeightInit::PyTorch.bias(9) else { panic!("uniform") };
        assert!((hi - 1.0 / 3.0).abs() < 1e-12 && lo == -hi);
    }
}
