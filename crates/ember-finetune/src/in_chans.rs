//! Pretrained first-convolution weights for another number of input channels (timm's
//! `adapt_input_conv`): RGB weights for a grey or multispectral model.

use candle_core::{DType, Tensor};

use crate::{Error, Result};

/// The weight `(o, c, kh, kw)` of a first convolution trained on `c` input channels, adapted to
/// `in_chans` channels as timm's `adapt_input_conv` does:
/// - `in_chans == c`: unchanged;
/// - `in_chans == 1`: the filters summed over the input channels, so a grey image gives exactly
///   what the original model gives on that grey copied to every channel (timm sums within groups
///   of 3 when `c > 3`, for space-to-depth stems, which ember's zoo does not have);
/// - `c == 3`, any other `in_chans`: the RGB filters repeated cyclically (R, G, B, R, ...) and
///   scaled by `3 / in_chans`, so the response keeps its magnitude when the channels do.
///
/// Anything else fails naming `name`. The arithmetic is done in `f32` and the result has the
/// weight's dtype.
pub fn adapt_input_conv(name: &str, weight: &Tensor, in_chans: usize) -> Result<Tensor> {
    let (_, c, _, _) = weight
        .dims4()
        .map_err(|_| Error::invalid(name, format!("a first convolution's weight is 4-D, not {:?}", weight.dims())))?;
    if in_chans == c {
        return Ok(weight.clone());
    }
    let unsupported = || {
        Error::invalid(
            name,
            format!(
                "cannot adapt a {c}-channel first convolution to {in_chans} channels \
                 (only 3 channels to any count, or any count to 1)"
            ),
        )
    };
    if in_chans == 0 {
        return Err(unsupported());
    }
    let w = weight.to_dtype(DType::F32)?;
    let adapted = if in_chans == 1 {
        w.sum_keepdim(1)?
    } else if c == 3 {
        // Weights first, then the scale, in f32, as timm computes them.
        let repeats = in_chans.div_ceil(3);
        (w.repeat((1, repeats, 1, 1))?.narrow(1, 0, in_chans)? * (3.0 / in_chans as f64))?
    } else {
        return Err(unsupported());
    };
    Ok(adapted.to_dtype(weight.dtype())?)
}

/// Adapts the checkpoint's first convolution to `model`'s input channels when they differ, in
/// place; `renamed` are the checkpoint's names after the renaming rules. Returns the adapted
/// tensor's name, if any.
///
/// The first convolution is the first layer in forward order ([`HeadInfo::layers`], read from a
/// real forward pass) that has a 4-D `{layer}.weight`: state names are sorted or built in
/// construction order, neither of which says which convolution sees the image.
///
/// [`HeadInfo::layers`]: crate::HeadInfo::layers
///
/// `layers` are the model's layers in forward order, `store` its parameters (the caller passes
/// a `FineTuneModel`'s, which keeps this module free of it).
pub(crate) fn adapt_stem(
    layers: &[String],
    store: &ember_layers::ParamStore,
    tensors: &mut [(String, Tensor)],
    renamed: &[String],
) -> Result<Option<String>> {
    let stem = layers.iter().find_map(|layer| {
        let name = format!("{layer}.weight");
        store.get(&name).filter(|v| v.rank() == 4).map(|v| (name, v.dims()[1]))
    });
    let Some((stem, in_chans)) = stem else { return Ok(None) };
    let Some(i) = renamed.iter().position(|n| *n == stem) else { return Ok(None) };
    let weight = &tensors[i].1;
    if weight.rank() != 4 || weight.dims()[1] == in_chans {
        return Ok(None); // Not a convolution weight: loading reports the shape mismatch.
    }
    tensors[i].1 = adapt_input_conv(&stem, weight, in_chans)?;
    Ok(Some(stem))
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn follows_timm_for_one_and_for_many_channels() {
        // (o=1, c=3, 1, 1) weights 1, 2, 4.
        let w = Tensor::new(&[1f32, 2., 4.], &Device::Cpu).unwrap().reshape((1, 3, 1, 1)).unwrap();
        let grey = adapt_input_conv("conv1.weight", &w, 1).unwrap();
        assert_eq!(grey.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [7.]);
        let five = adapt_input_conv("conv1.weight", &w, 5).unwrap();
        assert_eq!(five.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [0.6, 1.2, 2.4, 0.6, 1.2]);
        let err = adapt_input_conv("conv1.weight", &grey, 3).unwrap_err().to_string();
        assert!(err.contains("conv1.weight") && err.contains("1-channel"), "{err}");
    }
}
