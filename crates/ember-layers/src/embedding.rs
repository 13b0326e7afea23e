//! Embedding lookup table.

use candle_core::{DType, Result, Tensor};
use candle_nn::{Module, VarBuilder};
use ember_kernels::init::Init;

use crate::weight_init::candle_init;
use crate::{ModuleTree, Param};

/// A table of `num_embeddings` vectors of size `embedding_dim` (`{prefix}.weight`, drawn from
/// `N(0, 1)` as PyTorch's `nn.Embedding`); the forward pass looks rows up by index.
///
/// # Shapes
/// - input: any shape of integer indices (u8, u32 or i64)
/// - output: `(*input, embedding_dim)`
#[derive(Debug, Clone, ModuleTree)]
#[module(kind = Embedding)]
pub struct Embedding {
    #[module(skip)]
    name: String,
    weight: Param,
}

impl Embedding {
    /// Reads or creates `{vb}.weight` `(num_embeddings, embedding_dim)`.
    pub fn new(num_embeddings: usize, embedding_dim: usize, vb: VarBuilder) -> Result<Self> {
        let init = candle_init(Init::pytorch_embedding_default());
        let weight = vb.get_with_hints((num_embeddings, embedding_dim), "weight", init)?;
        Ok(Self { name: vb.prefix(), weight: Param::new(weight) })
    }

    /// The embedding table `(num_embeddings, embedding_dim)`.
    pub fn weight(&self) -> &Tensor {
        self.weight.tensor()
    }
}

impl Module for Embedding {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (num, dim) = self.weight.tensor().dims2()?;
        if xs.dtype().is_float() {
            candle_core::bail!("embedding `{}`: expected integer indices, got {:?}", self.name, xs.dtype())
        }
        let flat = xs.flatten_all()?.to_dtype(DType::I64)?;
        if flat.elem_count() > 0 {
            let (lo, hi) = (flat.min(0)?.to_scalar::<i64>()?, flat.max(0)?.to_scalar::<i64>()?);
            if lo < 0 || hi as usize >= num {
                candle_core::bail!(
                    "embedding `{}`: index {} out of range for {num} embeddings (input shape {:?})",
                    self.name,
                    if lo < 0 { lo } else { hi },
                    xs.dims()
                )
            }
        }
        let mut shape = xs.dims().to_vec();
        shape.push(dim);
        self.weight.value()?.index_select(&flat.to_dtype(DType::U32)?, 0)?.reshape(shape)
    }
}
