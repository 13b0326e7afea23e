//! Gaussian noise on a whole batch tensor, drawn from the caller's RNG (candle's own CPU RNG
//! cannot be seeded, so this keeps runs replayable).

use candle_core::Tensor;
use rand::rngs::StdRng;

use crate::error::check_non_negative;
use crate::rng::fill_standard_normal;
use crate::Result;

/// `images + std * N(0, 1)`, element-wise, with no clamping.
///
/// # Shapes
/// - images: any shape, float
/// - output: the same shape and dtype
pub fn add_gaussian_noise(images: &Tensor, std: f64, rng: &mut StdRng) -> Result<Tensor> {
    check_non_negative("batch gaussian noise", "std", std)?;
    let mut noise = vec![0f32; images.elem_count()];
    fill_standard_normal(rng, &mut noise);
    let noise = Tensor::from_vec(noise, images.shape(), images.device())?.to_dtype(images.dtype())?;
    Ok((images + noise.affine(std, 0.0)?)?)
}
