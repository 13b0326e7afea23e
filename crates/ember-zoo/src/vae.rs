//! Variational autoencoders (MLP and convolutional) with the reparameterisation trick.

use std::sync::{Arc, Mutex};

use candle_core::{DType, Result, Tensor, D};
use candle_nn::VarBuilder;
use ember_kernels::init::Init;
use ember_kernels::{Conv2dParams, ConvTranspose2dParams};
use ember_layers::loss::{binary_cross_entropy_with_logits, BceWithLogitsConfig, Reduction};
use ember_layers::{
    Activation, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, Entry, EntryMut, Flatten, LayerKind,
    Linear, ModulePath, ModuleTree,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::network::module_t_untapped;
use crate::network::{tapped, Layered, Tap};

/// The most images [`Vae::sample`] draws in one call.
pub const MAX_SAMPLES: usize = 10_000;

/// Encoder and decoder architecture of a [`Vae`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaeKind {
    /// Dense layers on the flattened image (PyTorch's `examples/vae`): `fc1` (in → hidden),
    /// `fc21`/`fc22` (hidden → μ / log σ²), `fc3` (latent → hidden), `fc4` (hidden → in).
    Mlp,
    /// Two stride-2 4x4 convolutions (32, 64 channels) and a dense layer down; the mirror image
    /// up with transposed convolutions. Needs a height and width divisible by 4.
    Conv,
}

/// Configuration for [`Vae`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaeConfig {
    /// Architecture.
    pub kind: VaeKind,
    /// Image shape `(c, h, w)`.
    pub input: (usize, usize, usize),
    /// Latent dimensions.
    pub latent: usize,
    /// Width of the hidden dense layer(s).
    pub hidden: usize,
    /// Seed of the noise drawn in train mode.
    pub seed: u64,
}

impl VaeConfig {
    /// 1x28x28 images, 20 latent dimensions, 400 hidden units (MLP) / 256 (conv).
    pub fn new(kind: VaeKind) -> Self {
        let hidden = match kind {
            VaeKind::Mlp => 400,
            VaeKind::Conv => 256,
        };
        Self { kind, input: (1, 28, 28), latent: 20, hidden, seed: 0 }
    }
}

/// What one pass through a [`Vae`] gives.
#[derive(Debug, Clone)]
pub struct VaeOutput {
    /// Reconstruction logits `(b, c, h, w)` (pixel probabilities after a sigmoid).
    pub logits: Tensor,
    /// Posterior means `(b, latent)`.
    pub mu: Tensor,
    /// Posterior log-variances `(b, latent)`.
    pub logvar: Tensor,
}

/// The terms of the (β-weighted) negative ELBO, each a scalar averaged over the batch.
#[derive(Debug, Clone)]
pub struct ElboTerms {
    /// `recon + beta * kl`: what training minimises.
    pub loss: Tensor,
    /// Summed pixel binary cross-entropy per image, in nats.
    pub recon: Tensor,
    /// `KL(q(z|x) || N(0, I))` per image, in nats.
    pub kl: Tensor,
}

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per model, never moved in a hot loop
enum Nets {
    Mlp {
        fc1: Linear,
        fc21: Linear,
        fc22: Linear,
        fc3: Linear,
        fc4: Linear,
    },
    Conv {
        conv1: Conv2d,
        conv2: Conv2d,
        fc1: Linear,
        fc_mu: Linear,
        fc_logvar: Linear,
        fc2: Linear,
        fc3: Linear,
        deconv1: ConvTranspose2d,
        deconv2: ConvTranspose2d,
    },
}

/// A variational autoencoder after Kingma and Welling, "Auto-encoding variational Bayes" (ICLR
/// 2014), with Bernoulli pixel likelihoods (so the reconstruction term is the summed pixel
/// binary cross-entropy) and a standard normal prior; `beta` weights the KL term as in Higgins et
/// al., "β-VAE" (ICLR 2017).
///
/// `z = μ + σ ε` (the reparameterisation trick): in train mode `ε ~ N(0, I)` comes from the
/// model's own generator seeded by [`VaeConfig::seed`], so one seed replays a run; in eval mode
/// `z = μ`. [`Vae::forward_with_noise`] takes `ε` explicitly.
///
/// # Shapes
/// - input: `(b, c, h, w)` images with values in `[0, 1]`
/// - output: [`VaeOutput`]; the `ModuleT` impl returns the reconstruction logits `(b, c, h, w)`
#[derive(Debug, Clone)]
pub struct Vae {
    cfg: VaeConfig,
    nets: Nets,
    rng: Arc<Mutex<StdRng>>,
    device: candle_core::Device,
}

fn down(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Conv2d> {
    let mut cfg = Conv2dConfig::new(c_in, c_out, 4);
    cfg.params = Conv2dParams { stride: 2, padding: 1, ..Conv2dParams::default() };
    Conv2d::new(&cfg, vb)
}

fn up(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<ConvTranspose2d> {
    let mut cfg = ConvTranspose2dConfig::new(c_in, c_out, 4);
    cfg.params = ConvTranspose2dParams { stride: 2, padding: 1, ..ConvTranspose2dParams::default() };
    ConvTranspose2d::new(&cfg, vb)
}

impl Vae {
    /// Reads or creates the parameters under `vb`.
    pub fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let (c, h, w) = cfg.input;
        let pixels = c * h * w;
        let nets = match cfg.kind {
            VaeKind::Mlp => Nets::Mlp {
                fc1: Linear::new(pixels, cfg.hidden, true, vb.pp("fc1"))?,
                fc21: Linear::new(cfg.hidden, cfg.latent, true, vb.pp("fc21"))?,
                fc22: Linear::new(cfg.hidden, cfg.latent, true, vb.pp("fc22"))?,
                fc3: Linear::new(cfg.latent, cfg.hidden, true, vb.pp("fc3"))?,
                fc4: Linear::new(cfg.hidden, pixels, true, vb.pp("fc4"))?,
            },
            VaeKind::Conv => {
                if h % 4 != 0 || w % 4 != 0 {
                    candle_core::bail!("vae-conv: image height and width must be multiples of 4, got {h}x{w}")
                }
                let flat = 64 * (h / 4) * (w / 4);
                Nets::Conv {
                    conv1: down(c, 32, vb.pp("conv1"))?,
                    conv2: down(32, 64, vb.pp("conv2"))?,
                    fc1: Linear::new(flat, cfg.hidden, true, vb.pp("fc1"))?,
                    fc_mu: Linear::new(cfg.hidden, cfg.latent, true, vb.pp("fc_mu"))?,
                    fc_logvar: Linear::new(cfg.hidden, cfg.latent, true, vb.pp("fc_logvar"))?,
                    fc2: Linear::new(cfg.latent, cfg.hidden, true, vb.pp("fc2"))?,
                    fc3: Linear::new(cfg.hidden, flat, true, vb.pp("fc3"))?,
                    deconv1: up(64, 32, vb.pp("deconv1"))?,
                    deconv2: up(32, c, vb.pp("deconv2"))?,
                }
            }
        };
        Ok(Self {
            cfg: *cfg,
            nets,
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(cfg.seed))),
            device: vb.device().clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &VaeConfig {
        &self.cfg
    }

    fn check_input(&self, xs: &Tensor) -> Result<()> {
        let (c, h, w) = self.cfg.input;
        match xs.dims() {
            [_, xc, xh, xw] if (*xc, *xh, *xw) == (c, h, w) => Ok(()),
            dims => candle_core::bail!("vae: expected input (batch, {c}, {h}, {w}), got {dims:?}"),
        }
    }

    fn encode_tapped(&self, xs: &Tensor, tap: Tap<'_>) -> Result<(Tensor, Tensor)> {
        self.check_input(xs)?;
        let relu = Activation::Relu;
        match &self.nets {
            Nets::Mlp { fc1, fc21, fc22, .. } => {
                let x = tapped(tap, "flatten", xs.apply(&Flatten)?);
                let x = tapped(tap, "fc1", x.apply(fc1)?.apply(&relu)?);
                Ok((tapped(tap, "fc21", x.apply(fc21)?), tapped(tap, "fc22", x.apply(fc22)?)))
            }
            Nets::Conv { conv1, conv2, fc1, fc_mu, fc_logvar, .. } => {
                let x = tapped(tap, "conv1", xs.apply(conv1)?.apply(&relu)?);
                let x = tapped(tap, "conv2", x.apply(conv2)?.apply(&relu)?);
                let x = tapped(tap, "flatten", x.apply(&Flatten)?);
                let x = tapped(tap, "fc1", x.apply(fc1)?.apply(&relu)?);
                Ok((tapped(tap, "fc_mu", x.apply(fc_mu)?), tapped(tap, "fc_logvar", x.apply(fc_logvar)?)))
            }
        }
    }

    fn decode_tapped(&self, z: &Tensor, tap: Tap<'_>) -> Result<Tensor> {
        let (c, h, w) = self.cfg.input;
        let b = match z.dims() {
            [b, l] if *l == self.cfg.latent => *b,
            dims => candle_core::bail!("vae decoder: expected latent (batch, {}), got {dims:?}", self.cfg.latent),
        };
        let relu = Activation::Relu;
        match &self.nets {
            Nets::Mlp { fc3, fc4, .. } => {
                let x = tapped(tap, "fc3", z.apply(fc3)?.apply(&relu)?);
                Ok(tapped(tap, "fc4", x.apply(fc4)?.reshape((b, c, h, w))?))
            }
            Nets::Conv { fc2, fc3, deconv1, deconv2, .. } => {
                let x = tapped(tap, "fc2", z.apply(fc2)?.apply(&relu)?);
                let x = tapped(tap, "fc3", x.apply(fc3)?.apply(&relu)?.reshape((b, 64, h / 4, w / 4))?);
                let x = tapped(tap, "deconv1", x.apply(deconv1)?.apply(&relu)?);
                Ok(tapped(tap, "deconv2", x.apply(deconv2)?))
            }
        }
    }

    /// The posterior's mean and log-variance.
    ///
    /// # Shapes
    /// - input: `(b, c, h, w)`
    /// - output: `((b, latent), (b, latent))`
    pub fn encode(&self, xs: &Tensor) -> Result<(Tensor, Tensor)> {
        self.encode_tapped(xs, &mut |_, _| {})
    }

    /// Reconstruction logits for latent codes.
    ///
    /// # Shapes
    /// - input: `(b, latent)`
    /// - output: `(b, c, h, w)` logits
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        self.decode_tapped(z, &mut |_, _| {})
    }

    /// Standard normal noise of `shape` from the model's seeded generator.
    pub fn noise(&self, shape: impl Into<candle_core::Shape>, dtype: DType) -> Result<Tensor> {
        let mut rng = self.rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Init::Normal { mean: 0.0, std: 1.0 }.sample(shape, dtype, &self.device, &mut rng)
    }

    /// Encodes, draws `z = μ + exp(logvar / 2) ε` with the given `eps`, and decodes.
    ///
    /// # Shapes
    /// - `xs`: `(b, c, h, w)`; `eps`: `(b, latent)`
    /// - output: [`VaeOutput`]
    pub fn forward_with_noise(&self, xs: &Tensor, eps: &Tensor) -> Result<VaeOutput> {
        let (mu, logvar) = self.encode(xs)?;
        let z = reparameterize(&mu, &logvar, eps)?;
        Ok(VaeOutput { logits: self.decode(&z)?, mu, logvar })
    }

    /// Train mode: noise from the model's generator; eval mode: `z = μ`.
    ///
    /// # Shapes
    /// - input: `(b, c, h, w)`
    /// - output: [`VaeOutput`]
    pub fn forward_vae(&self, xs: &Tensor, train: bool) -> Result<VaeOutput> {
        let (mu, logvar) = self.encode(xs)?;
        let z = if train { reparameterize(&mu, &logvar, &self.noise(mu.shape(), mu.dtype())?)? } else { mu.clone() };
        Ok(VaeOutput { logits: self.decode(&z)?, mu, logvar })
    }

    /// `n` images decoded from `z ~ N(0, I)` drawn from the model's generator, as pixel
    /// probabilities.
    ///
    /// # Shapes
    /// - output: `(n, c, h, w)` in `[0, 1]`
    pub fn sample(&self, n: usize) -> Result<Tensor> {
        if n == 0 || n > MAX_SAMPLES {
            candle_core::bail!("VAE samples: {n} asked for; draw between 1 and {MAX_SAMPLES} at a time")
        }
        let z = self.noise((n, self.cfg.latent), DType::F32)?;
        candle_nn::ops::sigmoid(&self.decode(&z)?)
    }

    /// Reconstructions through the posterior means, as pixel probabilities.
    ///
    /// # Shapes
    /// - input: `(b, c, h, w)`; output: `(b, c, h, w)` in `[0, 1]`
    pub fn reconstruct(&self, xs: &Tensor) -> Result<Tensor> {
        let (mu, _) = self.encode(xs)?;
        candle_nn::ops::sigmoid(&self.decode(&mu)?)
    }

    /// Decodes `steps` points evenly spaced on the line between the posterior means of `a` and
    /// `b` (both ends included), as pixel probabilities.
    ///
    /// # Shapes
    /// - `a`, `b`: `(1, c, h, w)`; output: `(steps, c, h, w)` in `[0, 1]`
    pub fn interpolate(&self, a: &Tensor, b: &Tensor, steps: usize) -> Result<Tensor> {
        if steps < 2 {
            candle_core::bail!("vae interpolate: need at least 2 steps, got {steps}")
        }
        let (za, _) = self.encode(a)?;
        let (zb, _) = self.encode(b)?;
        let ts: Vec<f32> = (0..steps).map(|i| i as f32 / (steps - 1) as f32).collect();
        let t = Tensor::from_vec(ts, (steps, 1), za.device())?;
        let z = (za.broadcast_mul(&t.affine(-1.0, 1.0)?)? + zb.broadcast_mul(&t)?)?;
        candle_nn::ops::sigmoid(&self.decode(&z)?)
    }
}

/// `mu + exp(logvar / 2) * eps`.
///
/// # Shapes
/// - all inputs and the output: `(b, latent)`
pub fn reparameterize(mu: &Tensor, logvar: &Tensor, eps: &Tensor) -> Result<Tensor> {
    if mu.shape() != logvar.shape() || mu.shape() != eps.shape() {
        candle_core::bail!(
            "reparameterize: mu {:?}, logvar {:?} and eps {:?} must have one shape",
            mu.dims(),
            logvar.dims(),
            eps.dims()
        )
    }
    mu + (logvar * 0.5)?.exp()? * eps
}

/// The β-weighted negative ELBO of `out` for the images `xs` (targets in `[0, 1]`):
/// summed pixel BCE + `beta` * `KL(N(μ, σ²) || N(0, I))` per image, averaged over the batch.
///
/// # Shapes
/// - `out.logits`, `xs`: `(b, c, h, w)`; `out.mu`, `out.logvar`: `(b, latent)`
/// - output: scalars
pub fn elbo_loss(out: &VaeOutput, xs: &Tensor, beta: f64) -> Result<ElboTerms> {
    let b = xs.dim(0)? as f64;
    let bce = BceWithLogitsConfig { reduction: Reduction::Sum, ..BceWithLogitsConfig::default() };
    let recon = (binary_cross_entropy_with_logits(&out.logits, xs, &bce)? / b)?;
    // KL = -1/2 Σ (1 + logvar - μ² - exp(logvar)).
    let kl =
        (((out.logvar.exp()? + out.mu.sqr()?)? - &out.logvar)? - 1.0)?.sum(D::Minus1)?.mean_all()?.affine(0.5, 0.0)?;
    let loss = (&recon + kl.affine(beta, 0.0)?)?;
    Ok(ElboTerms { loss, recon, kl })
}

/// The layers under the names the forward pass reports (`fc1`, `fc21`, ... or `conv1`, ...,
/// `deconv2`), in that order.
impl ModuleTree for Vae {
    fn visit_at<'a>(&'a self, path: &mut ModulePath, f: &mut dyn FnMut(&str, Entry<'a>)) {
        f(path.as_str(), Entry::Layer(LayerKind::Module("Vae")));
        match &self.nets {
            Nets::Mlp { fc1, fc21, fc22, fc3, fc4 } => {
                for (name, layer) in [("fc1", fc1), ("fc21", fc21), ("fc22", fc22), ("fc3", fc3), ("fc4", fc4)] {
                    path.child(name, layer, f);
                }
            }
            Nets::Conv { conv1, conv2, fc1, fc_mu, fc_logvar, fc2, fc3, deconv1, deconv2 } => {
                path.child("conv1", conv1, f);
                path.child("conv2", conv2, f);
                for (name, layer) in
                    [("fc1", fc1), ("fc_mu", fc_mu), ("fc_logvar", fc_logvar), ("fc2", fc2), ("fc3", fc3)]
                {
                    path.child(name, layer, f);
                }
                path.child("deconv1", deconv1, f);
                path.child("deconv2", deconv2, f);
            }
        }
    }

    fn visit_mut_at(&mut self, path: &mut ModulePath, f: &mut dyn FnMut(&str, EntryMut<'_>)) {
        f(path.as_str(), EntryMut::Layer(LayerKind::Module("Vae"), Some(self)));
        match &mut self.nets {
            Nets::Mlp { fc1, fc21, fc22, fc3, fc4 } => {
                for (name, layer) in [("fc1", fc1), ("fc21", fc21), ("fc22", fc22), ("fc3", fc3), ("fc4", fc4)] {
                    path.child_mut(name, layer, f);
                }
            }
            Nets::Conv { conv1, conv2, fc1, fc_mu, fc_logvar, fc2, fc3, deconv1, deconv2 } => {
                path.child_mut("conv1", conv1, f);
                path.child_mut("conv2", conv2, f);
                for (name, layer) in
                    [("fc1", fc1), ("fc_mu", fc_mu), ("fc_logvar", fc_logvar), ("fc2", fc2), ("fc3", fc3)]
                {
                    path.child_mut(name, layer, f);
                }
                path.child_mut("deconv1", deconv1, f);
                path.child_mut("deconv2", deconv2, f);
            }
        }
    }
}

impl Layered for Vae {
    fn forward_tapped(&self, xs: &Tensor, train: bool, tap: Tap<'_>) -> Result<Tensor> {
        let (mu, logvar) = self.encode_tapped(xs, tap)?;
        let z = if train { reparameterize(&mu, &logvar, &self.noise(mu.shape(), mu.dtype())?)? } else { mu };
        let z = tapped(tap, "z", z);
        self.decode_tapped(&z, tap)
    }
}

module_t_untapped!(Vae);
