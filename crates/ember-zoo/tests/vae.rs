//! The VAE: reparameterisation, the ELBO's terms, seeded noise, sampling, reconstruction and
//! interpolation, and a few training steps.

use candle_core::{DType, Device, Tensor};
use ember_layers::ParamStore;
use ember_zoo::{elbo_loss, reparameterize, ModelOptions, Vae, VaeOutput};

fn vae(name: &str, seed: u64) -> (ParamStore, Vae) {
    let store = ParamStore::new(seed, &Device::Cpu);
    let options = ModelOptions { seed, ..ModelOptions::mnist() };
    let vae = ember_zoo::build_vae(name, &options, store.var_builder(DType::F32)).unwrap();
    (store, vae)
}

/// `n` uniform-noise images, the same on every run.
fn images(n: usize) -> Tensor {
    let store = ParamStore::new(99, &Device::Cpu);
    let init = candle_nn::Init::Uniform { lo: 0.0, up: 1.0 };
    store.var_builder(DType::F32).get_with_hints((n, 1, 28, 28), "x", init).unwrap()
}

fn scalar(t: &Tensor) -> f32 {
    t.to_scalar::<f32>().unwrap()
}

#[test]
fn reparameterize_is_mu_plus_sigma_eps() {
    let dev = Device::Cpu;
    let mu = Tensor::new(&[[1f32, -2.0]], &dev).unwrap();
    let logvar = Tensor::new(&[[0f32, 2f32.ln() * 2.0]], &dev).unwrap();
    let eps = Tensor::new(&[[0.5f32, -1.0]], &dev).unwrap();
    let z = reparameterize(&mu, &logvar, &eps).unwrap().to_vec2::<f32>().unwrap();
    assert!((z[0][0] - 1.5).abs() < 1e-6 && (z[0][1] + 4.0).abs() < 1e-5, "{z:?}");
    assert!(reparameterize(&mu, &logvar, &eps.t().unwrap()).is_err());
}

#[test]
fn elbo_is_summed_pixel_bce_plus_beta_kl() {
    let dev = Device::Cpu;
    // One 1x1x2 "image", logits 0 (p = 0.5): BCE = 2 ln 2 per image.
    let out = VaeOutput {
        logits: Tensor::zeros((1, 1, 1, 2), DType::F32, &dev).unwrap(),
        mu: Tensor::new(&[[1f32, 0.0]], &dev).unwrap(),
        logvar: Tensor::new(&[[0f32, 1.0]], &dev).unwrap(),
    };
    let x = Tensor::new(&[[[[1f32, 0.0]]]], &dev).unwrap();
    let terms = elbo_loss(&out, &x, 0.5).unwrap();
    let kl = 0.5 * (1.0 + (1f32.exp() - 1.0 - 1.0));
    assert!((scalar(&terms.recon) - 2.0 * 2f32.ln()).abs() < 1e-5);
    assert!((scalar(&terms.kl) - kl).abs() < 1e-5, "{} vs {kl}", scalar(&terms.kl));
    assert!((scalar(&terms.loss) - (2.0 * 2f32.ln() + 0.5 * kl)).abs() < 1e-5);
}

#[test]
fn the_same_seed_draws_the_same_samples() {
    let (_, a) = vae("vae-mlp", 3);
    let (_, b) = vae("vae-mlp", 3);
    let (sa, sb) = (a.sample(4).unwrap(), b.sample(4).unwrap());
    assert_eq!(sa.dims(), &[4, 1, 28, 28]);
    assert_eq!(
        sa.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        sb.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    let min = scalar(&sa.min_all().unwrap());
    let max = scalar(&sa.max_all().unwrap());
    assert!((0.0..=1.0).contains(&min) && (0.0..=1.0).contains(&max));
}

#[test]
fn interpolation_starts_and_ends_at_the_reconstructions() {
    let (_, model) = vae("vae-conv", 0);
    let x = images(2);
    let (a, b) = (x.narrow(0, 0, 1).unwrap(), x.narrow(0, 1, 1).unwrap());
    let path = model.interpolate(&a, &b, 5).unwrap();
    assert_eq!(path.dims(), &[5, 1, 28, 28]);
    let recon = model.reconstruct(&x).unwrap();
    let d0 =
        (path.narrow(0, 0, 1).unwrap() - recon.narrow(0, 0, 1).unwrap()).unwrap().abs().unwrap().max_all().unwrap();
    let d4 =
        (path.narrow(0, 4, 1).unwrap() - recon.narrow(0, 1, 1).unwrap()).unwrap().abs().unwrap().max_all().unwrap();
    assert!(scalar(&d0) < 1e-5 && scalar(&d4) < 1e-5);
}

#[test]
fn a_few_sgd_steps_lower_the_negative_elbo() {
    for name in ["vae-mlp", "vae-conv"] {
        let (store, model) = vae(name, 1);
        let x = images(16).ge(0.7).unwrap().to_dtype(DType::F32).unwrap();
        let mut losses = Vec::new();
        for _ in 0..15 {
            let out = model.forward_vae(&x, true).unwrap();
            let terms = elbo_loss(&out, &x, 1.0).unwrap();
            let grads = terms.loss.backward().unwrap();
            for (_, var) in store.vars() {
                if let Some(g) = grads.get(var.as_tensor()) {
                    var.set(&(var.as_tensor() - (g * 1e-2).unwrap()).unwrap()).unwrap();
                }
            }
            losses.push(scalar(&terms.loss));
        }
        assert!(losses[14] < losses[0] * 0.95, "{name}: {losses:?}");
    }
}

#[test]
fn sampling_refuses_counts_that_cannot_be_drawn() {
    let (_, v) = vae("vae-mlp", 0);
    for n in [0, ember_zoo::MAX_SAMPLES + 1, 100_000_000] {
        let err = v.sample(n).unwrap_err().to_string();
        assert!(err.contains(&n.to_string()), "{err}");
    }
    assert_eq!(v.sample(3).unwrap().dims(), &[3, 1, 28, 28]);
}
