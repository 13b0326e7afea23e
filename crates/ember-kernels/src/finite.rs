//! Whether a tensor holds only finite numbers: the check checkpoint writers and loaders make
//! before a NaN or an infinity can reach a file or a model.

use candle_core::{DType, Result, Tensor};

/// `true` when every element of `t` is finite (integer tensors always are). Works on any
/// device: `t - t` is 0 for finite elements and NaN for NaN and ±∞, so the sum of the difference
/// is 0 exactly when all are finite.
pub fn all_finite(t: &Tensor) -> Result<bool> {
    if !t.dtype().is_float() || t.elem_count() == 0 {
        return Ok(true);
    }
    let residue = t.sub(t)?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    Ok(residue == 0.0)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::all_finite;

    #[test]
    fn finds_nan_and_both_infinities_in_any_float_dtype() -> candle_core::Result<()> {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let t = Tensor::new(&[1f32, bad, 3.0], &Device::Cpu)?;
            assert!(!all_finite(&t)?, "{bad} not found");
            assert!(!all_finite(&t.to_dtype(candle_core::DType::F64)?)?);
            assert!(!all_finite(&t.to_dtype(candle_core::DType::F16)?)?);
        }
        assert!(all_finite(&Tensor::new(&[f32::MAX, -f32::MAX, 0.0], &Device::Cpu)?)?);
        assert!(all_finite(&Tensor::new(&[7u32, 8], &Device::Cpu)?)?);
        Ok(())
    }
}
