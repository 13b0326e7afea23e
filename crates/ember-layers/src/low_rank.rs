//! A low-rank update carried by a weight (LoRA): the layer computes with `W + s · B A`.
//!
//! Attaching one is a one-time change to the model ([`Param::attach_low_rank`](crate::Param::attach_low_rank)):
//! the layer keeps its own forward pass and simply reads an adapted weight, so any layer whose
//! weight is a [`Param`](crate::Param) can be adapted and nothing is rebuilt per step.

use std::sync::{Arc, Mutex};

use candle_core::{Result, Tensor};

use crate::{Entry, EntryMut, ModulePath, Param};

/// A shared, settable mask over the rank components (`None`: all kept). The model that owns the
/// adapters draws a new one before each training forward pass (rank dropout) and clears it for
/// evaluation; the layers only read it.
pub type RankMask = Arc<Mutex<Option<Tensor>>>;

/// The update `scale · B · diag(mask) · A`, reshaped to the weight's shape.
///
/// `A` is `(rank, fan_in)` and `B` is `(out, rank)` where the weight is `(out, ...)` and
/// `fan_in` the product of the rest of its shape (`in` for a linear layer,
/// `in / groups · kh · kw` for a convolution). Both are [`Param`]s: they train, can be frozen, and
/// appear in the model tree beside the weight (`{layer}.lora_A`, `{layer}.lora_B`).
#[derive(Debug, Clone)]
pub struct LowRank {
    a: Param,
    b: Param,
    scale: f64,
    mask: RankMask,
}

impl LowRank {
    /// An update from `a` `(rank, fan_in)` and `b` `(out, rank)`, scaled by `scale`.
    pub fn new(a: Tensor, b: Tensor, scale: f64) -> Result<Self> {
        let (rank, _) = a.dims2()?;
        let (_, rank_b) = b.dims2()?;
        if rank != rank_b {
            candle_core::bail!("low-rank update: A has rank {rank} but B has rank {rank_b}")
        }
        Ok(Self { a: Param::new(a), b: Param::new(b), scale, mask: Arc::new(Mutex::new(None)) })
    }

    /// The rank.
    pub fn rank(&self) -> usize {
        self.a.tensor().dims()[0]
    }

    /// `A`.
    pub fn a(&self) -> &Param {
        &self.a
    }

    /// `B`.
    pub fn b(&self) -> &Param {
        &self.b
    }

    /// The scale `s` (LoRA's `alpha / rank`).
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The handle through which a rank mask `(1, rank)` is set for the next forward passes.
    pub fn mask(&self) -> RankMask {
        self.mask.clone()
    }

    /// `s · B · diag(mask) · A` in the weight's `shape`.
    pub fn delta(&self, shape: &[usize]) -> Result<Tensor> {
        let mut b = self.b.value()?;
        let mask = self.mask.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(mask) = mask {
            b = b.broadcast_mul(&mask)?;
        }
        (b.matmul(&self.a.value()?)? * self.scale)?.reshape(shape)
    }

    fn names(weight: &str) -> (String, String) {
        if weight == "weight" {
            ("lora_A".into(), "lora_B".into())
        } else {
            (format!("{weight}_lora_A"), format!("{weight}_lora_B"))
        }
    }

    /// Reports `A` and `B` beside the weight at `path` (`conv1.weight` → `conv1.lora_A`).
    pub(crate) fn visit_beside<'a>(&'a self, path: &mut ModulePath, f: &mut dyn FnMut(&str, Entry<'a>)) {
        let weight = path.last().to_string();
        let (a, b) = Self::names(&weight);
        path.pop();
        path.child(&a, &self.a, f);
        path.child(&b, &self.b, f);
        path.push(&weight);
    }

    /// As [`LowRank::visit_beside`], mutably.
    pub(crate) fn visit_beside_mut(&mut self, path: &mut ModulePath, f: &mut dyn FnMut(&str, EntryMut<'_>)) {
        let weight = path.last().to_string();
        let (a, b) = Self::names(&weight);
        path.pop();
        path.child_mut(&a, &mut self.a, f);
        path.child_mut(&b, &mut self.b, f);
        path.push(&weight);
    }
}
