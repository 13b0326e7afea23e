//! Elastic weight consolidation (Kirkpatrick et al., "Overcoming catastrophic forgetting in
//! neural networks", PNAS 2017): a quadratic penalty holding the parameters that mattered for
//! earlier tasks near the values they had then.

use candle_core::{DType, Tensor};
use candle_nn::ModuleT;
use ember_data::DataLoader;
use ember_layers::loss::cross_entropy;
use ember_layers::ParamStore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::continual::setting::apply_masks;
use crate::{Error, Result};

/// What one finished task leaves behind: the diagonal of its Fisher information and the
/// parameters `θ*` it was estimated at, both keyed by parameter name.
#[derive(Debug, Clone)]
pub struct EwcAnchor {
    /// `F_i`, one tensor per parameter, shaped like it.
    pub fisher: Vec<(String, Tensor)>,
    /// `θ*_i`, copies of the parameters at the end of the task.
    pub params: Vec<(String, Tensor)>,
}

/// `λ/2 · Σ_tasks Σ_i F_i (θ_i - θ*_i)²`: one term per finished task, each with its own Fisher
/// and anchor (Kirkpatrick et al.'s sum of penalties, not "online" EWC's running average).
#[derive(Debug, Clone)]
pub struct Ewc {
    lambda: f64,
    anchors: Vec<EwcAnchor>,
}

impl Ewc {
    /// A penalty of strength `lambda` with no task yet; fails unless `lambda` is a
    /// non-negative number.
    pub fn new(lambda: f64) -> Result<Self> {
        if !(lambda >= 0.0 && lambda.is_finite()) {
            return Err(Error::invalid("ewc", format!("lambda must be a non-negative number, got {lambda}")));
        }
        Ok(Self { lambda, anchors: Vec::new() })
    }

    /// Adds a finished task's term.
    pub fn push(&mut self, anchor: EwcAnchor) {
        self.anchors.push(anchor);
    }

    /// The finished tasks' terms.
    pub fn anchors(&self) -> &[EwcAnchor] {
        &self.anchors
    }

    /// `λ`.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// The penalty at the store's current parameters, differentiable with respect to them
    /// (its gradient is `λ Σ_tasks F (θ - θ*)`); a scalar 0 before the first task ends. Fails
    /// naming a parameter the store does not have.
    pub fn penalty(&self, store: &ParamStore) -> candle_core::Result<Tensor> {
        // Summed in the parameters' dtype, so the penalty adds to a loss of that dtype.
        let dtype = store.vars().first().map_or(DType::F32, |(_, v)| v.dtype());
        let mut total = Tensor::zeros((), dtype, store.device())?;
        for anchor in &self.anchors {
            for ((name, fisher), (_, star)) in anchor.fisher.iter().zip(&anchor.params) {
                let var = store
                    .get(name)
                    .ok_or_else(|| candle_core::Error::Msg(format!("ewc: the model has no parameter `{name}`")))?;
                let term = ((var.as_tensor() - star)?.sqr()? * fisher)?.sum_all()?;
                total = (total + term.to_dtype(dtype)?)?;
            }
        }
        total.affine(self.lambda / 2.0, 0.0)
    }
}

/// The diagonal Fisher information `E_x E_{y ~ p(y|x)} [(∂ log p(y|x) / ∂θ)²]` of `model` at
/// its current parameters, estimated on the first `samples` examples `data` serves (epoch 0;
/// a shuffled loader picks a random subset), one backward pass per example, with `y` drawn from
/// the model's own predictive distribution (the true Fisher, not the "empirical" one of the
/// labels; draws from `seed`). `masks` restricts the prediction to the classes the setting
/// allows ([`super::label_masks`]). Returns it with a copy of the parameters.
pub fn fisher_diagonal(
    model: &dyn ModuleT,
    store: &ParamStore,
    data: &DataLoader,
    masks: &Tensor,
    samples: usize,
    seed: u64,
) -> Result<EwcAnchor> {
    if samples == 0 {
        return Err(Error::invalid("ewc", "0 Fisher samples: the Fisher information needs at least one example"));
    }
    let vars = store.vars();
    let mut fisher: Vec<Tensor> =
        vars.iter().map(|(_, v)| v.as_tensor().zeros_like()).collect::<candle_core::Result<_>>()?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut n = 0usize;
    'batches: for batch in data.epoch(0, store.device()) {
        let batch = batch?;
        for i in 0..batch.labels.dim(0)? {
            if n == samples {
                break 'batches;
            }
            let (x, label) = (batch.images.narrow(0, i, 1)?, batch.labels.narrow(0, i, 1)?);
            let logits = apply_masks(&model.forward_t(&x, false)?, masks, &label)?;
            let probs = candle_nn::ops::softmax_last_dim(&logits.detach())?
                .flatten_all()?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?;
            let y = sample(&probs, rng.random::<f32>());
            let nll = cross_entropy(&logits, &Tensor::new(&[y], logits.device())?)?;
            let grads = nll.backward()?;
            for (f, (_, v)) in fisher.iter_mut().zip(&vars) {
                if let Some(g) = grads.get(v.as_tensor()) {
                    *f = (&*f + g.sqr()?)?;
                }
            }
            n += 1;
        }
    }
    if n == 0 {
        return Err(Error::invalid("ewc", "the data for the Fisher information holds no examples"));
    }
    let scale = 1.0 / n as f64;
    // `copy` alone would keep the anchor in the parameters' graph (candle records the copy),
    // and `θ - θ*` would then have a gradient of 0.
    Ok(EwcAnchor {
        fisher: vars
            .iter()
            .zip(fisher)
            .map(|((name, _), f)| Ok((name.clone(), f.affine(scale, 0.0)?)))
            .collect::<candle_core::Result<_>>()?,
        params: vars
            .iter()
            .map(|(name, v)| Ok((name.clone(), v.as_tensor().copy()?.detach())))
            .collect::<candle_core::Result<_>>()?,
    })
}

/// The class whose cumulative probability first exceeds `u` (in `[0, 1)`); the last class with
/// a non-zero probability when rounding leaves the sum short of `u`.
fn sample(probs: &[f32], u: f32) -> u32 {
    let mut acc = 0f32;
    let mut last = 0;
    for (c, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            last = c;
            acc += p;
            if u < acc {
                return c as u32;
            }
        }
    }
    last as u32
}
