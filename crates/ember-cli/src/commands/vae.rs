//! `ember vae train` and `ember vae sample`: the VAE's training loop (Adam on the β-weighted
//! negative ELBO) and PNG grids of samples, reconstructions and interpolations.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use ember_data::{DataLoader, KnownDataset, LabelledImages, Split};
use ember_layers::ParamStore;
use ember_optim::{Adam, AdamConfig};
use ember_train::callback::OnEpoch;
use ember_train::{checkpoint, EpochReport, FitOptions, Learner, StepOutput};
use ember_zoo::{elbo_loss, ModelOptions, Task, Vae};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::args::{VaeSampleArgs, VaeTrainArgs};

/// `RUN_DIR/vae.json`: how a VAE was trained and how well it does.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct VaeRunInfo {
    ember_version: String,
    model: String,
    dataset: String,
    data_dir: Option<PathBuf>,
    input: [usize; 3],
    latent: usize,
    beta: f64,
    epochs: usize,
    batch_size: usize,
    lr: f64,
    seed: u64,
    train_images: usize,
    /// Negative ELBO on the test split (summed pixel BCE + KL, nats per image, one noise draw).
    test_neg_elbo: f64,
    test_recon: f64,
    test_kl: f64,
    seconds: f64,
}

/// Mean reconstruction and KL terms per image over `data` (β = 1, one noise draw per image).
fn evaluate(vae: &Vae, data: &DataLoader, device: &Device) -> anyhow::Result<(f64, f64)> {
    let (mut recon, mut kl, mut seen) = (0f64, 0f64, 0usize);
    for batch in data.epoch(0, device) {
        let x = batch?.images;
        let n = x.dim(0)?;
        let eps = vae.noise((n, vae.config().latent), DType::F32)?;
        let terms = elbo_loss(&vae.forward_with_noise(&x, &eps)?, &x, 1.0)?;
        recon += terms.recon.to_scalar::<f32>()? as f64 * n as f64;
        kl += terms.kl.to_scalar::<f32>()? as f64 * n as f64;
        seen += n;
    }
    Ok((recon / seen.max(1) as f64, kl / seen.max(1) as f64))
}

pub fn train(args: &VaeTrainArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let info = ember_zoo::info(&args.model)?;
    anyhow::ensure!(info.task == Task::Generation, "`{}` is not a VAE (try vae-mlp or vae-conv)", args.model);
    anyhow::ensure!(args.epochs > 0, "--epochs must be at least 1");
    anyhow::ensure!(args.lr > 0.0 && args.lr.is_finite(), "--lr must be a positive number, got {}", args.lr);
    anyhow::ensure!(args.beta >= 0.0 && args.beta.is_finite(), "--beta must be non-negative, got {}", args.beta);
    let dataset: KnownDataset = args.data.dataset.parse()?;
    let data_dir = args.data.data_dir.as_deref();
    let mut train_set = crate::data::load_split(dataset, data_dir, Split::Train)?;
    if let Some(limit) = args.train_limit {
        let n = limit.min(train_set.len());
        train_set = train_set.select(&(0..n).collect::<Vec<_>>())?;
    }
    let test_set = crate::data::load_split(dataset, data_dir, Split::Test)?;
    let input = (1, train_set.height(), train_set.width());
    let n_train = train_set.len();

    let device = args.device.open()?;
    let store = ParamStore::new(args.seed, &device);
    let options = ModelOptions { latent: args.latent, seed: args.seed, ..ModelOptions::new(input, 1) };
    let vae = ember_zoo::build_vae(&args.model, &options, store.var_builder(DType::F32))?;
    let mut adam = Adam::new(store.vars(), AdamConfig { lr: args.lr, ..AdamConfig::default() })?;
    let test_images = test_set.clone();
    let train_loader = DataLoader::new(Arc::new(train_set), args.batch_size).with_shuffle(args.seed).with_workers(1);
    let test_loader = DataLoader::new(Arc::new(test_set), 500);
    println!(
        "training {} on {dataset} ({n_train} train / {} test images), {} parameters, latent {}, beta {}, {} epochs, batch {}, lr {}, seed {}",
        args.model,
        test_images.len(),
        store.num_parameters(),
        args.latent,
        args.beta,
        args.epochs,
        args.batch_size,
        args.lr,
        args.seed
    );

    // The ELBO is the step's loss; the Learner runs the loop (shuffling, the divergence check).
    // After every epoch the test split is scored for the printed curve only: nothing is chosen
    // by it, and the run keeps its last weights.
    let step = |batch: &ember_data::Batch, train: bool| {
        let x = &batch.images;
        let terms = elbo_loss(&vae.forward_vae(x, train)?, x, args.beta)?;
        Ok(StepOutput { loss: terms.loss, logits: None })
    };
    let mut history = Vec::new();
    let mut scoring_failed = None;
    let on_epoch = |r: &EpochReport| match evaluate(&vae, &test_loader, &device) {
        Ok((recon, kl)) => {
            println!(
                "epoch {:>3}/{}  train_loss {:.2}  test -ELBO {:.2} (recon {:.2} + KL {:.2})  {:.1}s",
                r.epoch,
                r.epochs,
                r.train_loss,
                recon + kl,
                recon,
                kl,
                r.seconds
            );
            history.push(json!({"epoch": r.epoch, "train_loss": r.train_loss, "test_neg_elbo": recon + kl, "test_recon": recon, "test_kl": kl}));
        }
        Err(e) => {
            scoring_failed.get_or_insert(e);
        }
    };
    Learner::with_step(step, &store, &mut adam).with_callback(OnEpoch(on_epoch)).fit(
        &train_loader,
        None,
        &FitOptions { device: device.clone(), ..FitOptions::new(args.epochs) },
    )?;
    if let Some(e) = scoring_failed {
        return Err(e.context("scoring the test split after an epoch"));
    }

    std::fs::create_dir_all(&args.out).with_context(|| format!("creating run directory {}", args.out.display()))?;
    let weights = args.out.join("model.safetensors");
    checkpoint::save(&store, &weights)?;
    let (recon, kl) = evaluate(&vae, &test_loader, &device)?;
    write_grids(&vae, &test_images, &args.out, &device)?;
    let seconds = started.elapsed().as_secs_f64();
    let run = VaeRunInfo {
        ember_version: env!("CARGO_PKG_VERSION").to_string(),
        model: args.model.clone(),
        dataset: dataset.to_string(),
        data_dir: args.data.data_dir.clone(),
        input: [input.0, input.1, input.2],
        latent: args.latent,
        beta: args.beta,
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        train_images: n_train,
        test_neg_elbo: recon + kl,
        test_recon: recon,
        test_kl: kl,
        seconds,
    };
    let text = serde_json::to_string_pretty(&run)?;
    let run_path = args.out.join("vae.json");
    checkpoint::write_atomically(&run_path, |tmp| {
        std::fs::write(tmp, &text)
            .map_err(|source| ember_train::Error::Io(ember_train::IoError { path: tmp.to_path_buf(), source }))
    })?;
    println!(
        "test -ELBO {:.2} nats per image (recon {:.2} + KL {:.2}), {:.1} s; weights in {}, grids in {}",
        recon + kl,
        recon,
        kl,
        seconds,
        weights.display(),
        args.out.display()
    );
    if args.report.json {
        println!(
            "{}",
            json!({"test_neg_elbo": recon + kl, "test_recon": recon, "test_kl": kl, "checkpoint": weights, "seconds": seconds, "epochs": history})
        );
    }
    Ok(())
}

/// `samples.png`, `reconstructions.png` and `interpolation.png` in `dir`.
fn write_grids(vae: &Vae, test: &LabelledImages, dir: &Path, device: &Device) -> anyhow::Result<()> {
    write_grid(&vae.sample(64)?, 8, &dir.join("samples.png"))?;
    write_grid(&reconstruction_rows(vae, test, 32, device)?, 8, &dir.join("reconstructions.png"))?;
    write_grid(&interpolation_rows(vae, test, 8, 10, device)?, 10, &dir.join("interpolation.png"))?;
    Ok(())
}

/// The first `n` test images, `(n, 1, h, w)` in `[0, 1]`.
fn first_images(test: &LabelledImages, n: usize, device: &Device) -> anyhow::Result<Tensor> {
    let n = n.min(test.len());
    let batch = DataLoader::new(Arc::new(test.select(&(0..n).collect::<Vec<_>>())?), n)
        .epoch(0, device)
        .next()
        .context("the test split is empty")??;
    Ok(batch.images)
}

/// Rows of 8 originals, each followed by a row of their reconstructions.
fn reconstruction_rows(vae: &Vae, test: &LabelledImages, n: usize, device: &Device) -> anyhow::Result<Tensor> {
    let x = first_images(test, n, device)?;
    let r = vae.reconstruct(&x)?;
    let mut rows = Vec::new();
    for start in (0..x.dim(0)?).step_by(8) {
        let len = 8.min(x.dim(0)? - start);
        rows.push(x.narrow(0, start, len)?);
        rows.push(r.narrow(0, start, len)?);
    }
    Ok(Tensor::cat(&rows, 0)?)
}

/// `pairs` rows, each `steps` decodings from one test image's code to the next one's.
fn interpolation_rows(
    vae: &Vae,
    test: &LabelledImages,
    pairs: usize,
    steps: usize,
    device: &Device,
) -> anyhow::Result<Tensor> {
    let x = first_images(test, 2 * pairs, device)?;
    let mut rows = Vec::new();
    for p in 0..x.dim(0)? / 2 {
        rows.push(vae.interpolate(&x.narrow(0, 2 * p, 1)?, &x.narrow(0, 2 * p + 1, 1)?, steps)?);
    }
    Ok(Tensor::cat(&rows, 0)?)
}

/// Writes `(n, 1, h, w)` images in `[0, 1]` as a grey PNG grid, `cols` per row, 2 px apart.
fn write_grid(images: &Tensor, cols: usize, path: &Path) -> anyhow::Result<()> {
    let (n, c, h, w) = images.dims4()?;
    anyhow::ensure!(c == 1 && n > 0, "grid: expected (n, 1, h, w) images, got {:?}", images.dims());
    let pixels = images.clamp(0f32, 1f32)?.flatten_all()?.to_vec1::<f32>()?;
    let (gap, rows) = (2, n.div_ceil(cols));
    let (gw, gh) = (cols * (w + gap) + gap, rows * (h + gap) + gap);
    let mut grid = image::GrayImage::from_pixel(gw as u32, gh as u32, image::Luma([64]));
    for i in 0..n {
        let (ox, oy) = (gap + (i % cols) * (w + gap), gap + (i / cols) * (h + gap));
        for y in 0..h {
            for x in 0..w {
                let v = (pixels[i * h * w + y * w + x] * 255.0).round() as u8;
                grid.put_pixel((ox + x) as u32, (oy + y) as u32, image::Luma([v]));
            }
        }
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    grid.save(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn sample(args: &VaeSampleArgs) -> anyhow::Result<()> {
    let run_path = args.checkpoint.with_file_name("vae.json");
    let text = std::fs::read_to_string(&run_path)
        .with_context(|| format!("{}: needed beside the checkpoint to rebuild the VAE", run_path.display()))?;
    let run: VaeRunInfo =
        serde_json::from_str(&text).with_context(|| format!("{}: not a valid vae.json", run_path.display()))?;
    anyhow::ensure!(args.count > 0, "--count must be at least 1");

    let device = args.device.open()?;
    let store = ParamStore::new(0, &device);
    let input = (run.input[0], run.input[1], run.input[2]);
    let options = ModelOptions { latent: run.latent, seed: args.seed, ..ModelOptions::new(input, 1) };
    let vae = ember_zoo::build_vae(&run.model, &options, store.var_builder(DType::F32))?;
    checkpoint::load(&store, &args.checkpoint)?;

    let cols = (args.count as f64).sqrt().ceil() as usize;
    write_grid(&vae.sample(args.count)?, cols, &args.grid)?;
    println!("{} samples of {} (latent {}) in {}", args.count, run.model, run.latent, args.grid.display());
    if args.reconstructions.is_some() || args.interpolate.is_some() {
        let dataset: KnownDataset = run.dataset.parse()?;
        let data_dir = args.data_dir.as_deref().or(run.data_dir.as_deref());
        let test = crate::data::load_split(dataset, data_dir, Split::Test)?;
        if let Some(path) = &args.reconstructions {
            write_grid(&reconstruction_rows(&vae, &test, 32, &device)?, 8, path)?;
            println!("test images and reconstructions in {}", path.display());
        }
        if let Some(path) = &args.interpolate {
            write_grid(&interpolation_rows(&vae, &test, 8, 10, &device)?, 10, path)?;
            println!("latent interpolations in {}", path.display());
        }
    }
    Ok(())
}
