//! Ensembles (mean, weighted, vote) and the distillation loss.

use std::sync::Arc;

use candle_core::{Device, Tensor, Var, D};
use candle_nn::ModuleT;
use ember_data::{Batch, DataLoader, LabelledImages};
use ember_finetune::{combine, distillation_loss, evaluate_ensemble, Combine, Distill, DistillConfig, Ensemble, Error};
use ember_layers::loss::cross_entropy;
use ember_train::TrainStep;

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2::<f32>().unwrap()
}

fn close(a: &[Vec<f32>], b: &[Vec<f32>]) -> bool {
    a.iter().flatten().zip(b.iter().flatten()).all(|(x, y)| (x - y).abs() < 1e-5)
}

fn probs() -> Vec<Tensor> {
    let t = |v: [[f32; 3]; 2]| Tensor::new(&v, &Device::Cpu).unwrap();
    vec![
        t([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]]),
        t([[0.4, 0.5, 0.1], [0.1, 0.2, 0.7]]),
        t([[0.45, 0.5, 0.05], [0.3, 0.4, 0.3]]),
    ]
}

#[test]
fn mean_weighted_and_vote_combine_as_defined() {
    let p = probs();
    let mean = rows(&combine(&p, &Combine::Mean).unwrap());
    assert!(close(&mean, &[vec![1.45 / 3.0, 1.3 / 3.0, 0.25 / 3.0], vec![0.2, 1.1 / 3.0, 1.3 / 3.0]]), "{mean:?}");
    let weighted = rows(&combine(&p, &Combine::Weighted(vec![2.0, 0.0, 0.0])).unwrap());
    assert!(close(&weighted, &rows(&p[0])));
    let weighted = rows(&combine(&p, &Combine::Weighted(vec![1.0, 1.0, 2.0])).unwrap());
    assert!((weighted[0][0] - (0.6 + 0.4 + 0.9) / 4.0).abs() < 1e-6);
    // Sample 0: the mean prefers class 0, but two of three members vote for class 1.
    let vote = combine(&p, &Combine::Vote).unwrap();
    assert_eq!(vote.argmax(1).unwrap().to_vec1::<u32>().unwrap(), vec![1, 1]);
    assert_eq!(combine(&p, &Combine::Mean).unwrap().argmax(1).unwrap().to_vec1::<u32>().unwrap(), vec![0, 2]);
    let sums = vote.sum(1).unwrap().to_vec1::<f32>().unwrap();
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5), "{sums:?}");
}

/// Classifies images whose pixels all equal `50 * class` perfectly.
struct Oracle;
impl ModuleT for Oracle {
    fn forward_t(&self, xs: &Tensor, _: bool) -> candle_core::Result<Tensor> {
        let m = xs.flatten_from(1)?.mean_keepdim(1)?; // (b, 1)
        let centres = Tensor::new(&[0f32, 50.0 / 255.0, 100.0 / 255.0], xs.device())?.unsqueeze(0)?;
        m.broadcast_sub(&centres)?.sqr()? * -1e4
    }
}

/// Always says class 0.
struct Stubborn;
impl ModuleT for Stubborn {
    fn forward_t(&self, xs: &Tensor, _: bool) -> candle_core::Result<Tensor> {
        Tensor::new(&[1f32, 0.0, 0.0], xs.device())?.unsqueeze(0)?.repeat((xs.dim(0)?, 1))
    }
}

/// A teacher that must not be asked.
struct Absent;
impl ModuleT for Absent {
    fn forward_t(&self, _: &Tensor, _: bool) -> candle_core::Result<Tensor> {
        candle_core::bail!("the teacher was run")
    }
}

fn three_class_data() -> Arc<LabelledImages> {
    let labels: Vec<u8> = (0..30).map(|i| (i % 3) as u8).collect();
    let pixels: Vec<u8> = labels.iter().flat_map(|&l| vec![50 * l; 4 * 4]).collect();
    Arc::new(LabelledImages::new(pixels, labels, 4, 4, 3).unwrap())
}

#[test]
fn ensemble_reports_every_member_and_outvotes_a_bad_one() {
    let members: Vec<Box<dyn ModuleT + Send + Sync>> = vec![Box::new(Oracle), Box::new(Stubborn), Box::new(Oracle)];
    let ensemble = Ensemble::new(members, Combine::Vote).unwrap();
    let data = DataLoader::new(three_class_data(), 7);
    let report = evaluate_ensemble(&ensemble, &data, 3, &Device::Cpu).unwrap();
    let accs: Vec<f64> = report.members.iter().map(|m| m.accuracy()).collect();
    assert_eq!(accs, vec![1.0, 1.0 / 3.0, 1.0]);
    assert_eq!(report.ensemble.accuracy(), 1.0);
    assert_eq!(report.ensemble.total(), 30);
    // As a module: log-probabilities that sum to one.
    let batch = data.epoch(0, &Device::Cpu).next().unwrap().unwrap();
    let out = ensemble.forward_t(&batch.images, false).unwrap();
    let sums = out.exp().unwrap().sum(1).unwrap().to_vec1::<f32>().unwrap();
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-4), "{sums:?}");

    let bad = Ensemble::new(vec![Box::new(Oracle), Box::new(Stubborn)], Combine::Weighted(vec![1.0]));
    assert!(matches!(bad, Err(Error::Invalid { .. })));
    assert!(matches!(Ensemble::new(Vec::new(), Combine::Mean), Err(Error::Invalid { .. })));
}

#[test]
fn distillation_loss_mixes_soft_and_hard_terms_with_t_squared_scaling() {
    let dev = Device::Cpu;
    let student = Var::new(&[[1.0f32, -0.5, 0.2], [0.3, 0.8, -1.0]], &dev).unwrap();
    let teacher = Tensor::new(&[[2.0f32, 0.1, -0.3], [-0.2, 1.5, 0.4]], &dev).unwrap();
    let labels = Tensor::new(&[0u32, 1], &dev).unwrap();
    let ce = cross_entropy(student.as_tensor(), &labels).unwrap().to_scalar::<f32>().unwrap();
    let alone = DistillConfig { temperature: 4.0, alpha: 0.0 };
    assert_eq!(
        distillation_loss(student.as_tensor(), &teacher, &labels, &alone).unwrap().to_scalar::<f32>().unwrap(),
        ce
    );
    // Student = teacher: the KL term vanishes.
    let cfg = DistillConfig { temperature: 3.0, alpha: 0.7 };
    let same = distillation_loss(student.as_tensor(), &student.as_tensor().clone(), &labels, &cfg).unwrap();
    assert!((same.to_scalar::<f32>().unwrap() - 0.3 * ce).abs() < 1e-6);
    // Pure soft loss: d/ds = alpha * T * (softmax(s/T) - softmax(t/T)) / b  (Hinton et al.).
    let soft = DistillConfig { temperature: 3.0, alpha: 1.0 };
    let loss = distillation_loss(student.as_tensor(), &teacher, &labels, &soft).unwrap();
    let grad = loss.backward().unwrap().get(student.as_tensor()).unwrap().clone();
    let ps = candle_nn::ops::softmax(&(student.as_tensor() / 3.0).unwrap(), D::Minus1).unwrap();
    let pt = candle_nn::ops::softmax(&(&teacher / 3.0).unwrap(), D::Minus1).unwrap();
    let expected = ((ps - pt).unwrap() * (3.0 / 2.0)).unwrap();
    assert!(close(&rows(&grad), &rows(&expected)), "{:?} vs {:?}", rows(&grad), rows(&expected));
}

#[test]
fn distill_step_runs_the_teacher_only_when_it_teaches() {
    let batch = Batch {
        images: Tensor::zeros((2, 1, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap(),
        labels: Tensor::new(&[0u32, 2], &Device::Cpu).unwrap(),
    };
    let alone = Distill { student: &Stubborn, teacher: &Absent, cfg: DistillConfig { temperature: 2.0, alpha: 0.0 } };
    assert!(alone.step(&batch, true).is_ok());
    let taught = Distill { student: &Stubborn, teacher: &Absent, cfg: DistillConfig::default() };
    assert!(taught.step(&batch, true).unwrap_err().to_string().contains("the teacher was run"));
    let with_teacher = Distill { student: &Stubborn, teacher: &Oracle, cfg: DistillConfig::default() };
    let out = with_teacher.step(&batch, true).unwrap();
    assert!(out.loss.to_scalar::<f32>().unwrap() > 0.0);
}

#[test]
fn distillation_loss_and_gradient_match_pytorch() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/distill.json");
    let fixture: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let matrix = |v: &serde_json::Value| -> Vec<Vec<f32>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
            .collect()
    };
    let tensor = |m: &[Vec<f32>]| Tensor::new(m.to_vec(), &Device::Cpu).unwrap();
    for case in fixture["cases"].as_array().unwrap() {
        let student = Var::from_tensor(&tensor(&matrix(&case["student"]))).unwrap();
        let teacher = tensor(&matrix(&case["teacher"]));
        let labels: Vec<u32> = case["labels"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let labels = Tensor::new(labels, &Device::Cpu).unwrap();
        let cfg = DistillConfig {
            temperature: case["temperature"].as_f64().unwrap(),
            alpha: case["alpha"].as_f64().unwrap(),
        };
        let loss = distillation_loss(student.as_tensor(), &teacher, &labels, &cfg).unwrap();
        let expected = case["loss"].as_f64().unwrap() as f32;
        assert!((loss.to_scalar::<f32>().unwrap() - expected).abs() < 1e-5, "{cfg:?}");
        let grad = loss.backward().unwrap().get(student.as_tensor()).unwrap().clone();
        assert!(close(&rows(&grad), &matrix(&case["grad"])), "{cfg:?}");
    }
}

#[test]
fn settings_that_cannot_train_are_refused_by_the_library() {
    // T = 0 divides the logits by zero; the error says so instead of a NaN later.
    for cfg in [
        DistillConfig { temperature: 0.0, alpha: 0.9 },
        DistillConfig { temperature: f64::NAN, alpha: 0.9 },
        DistillConfig { temperature: 4.0, alpha: 1.5 },
    ] {
        assert!(cfg.validate().is_err(), "{cfg:?} accepted");
    }
    let logits = Tensor::new(&[[1f32, 2.0]], &Device::Cpu).unwrap();
    let labels = Tensor::new(&[1u32], &Device::Cpu).unwrap();
    let zero = DistillConfig { temperature: 0.0, alpha: 0.9 };
    let err = distillation_loss(&logits, &logits, &labels, &zero).unwrap_err().to_string();
    assert!(err.contains("temperature"), "{err}");
    // A rate ratio of 0 gives the first layer group an infinite learning rate.
    let cfg = ember_finetune::FineTuneConfig { lr_ratio: 0.0, ..Default::default() };
    assert!(cfg.validate().unwrap_err().to_string().contains("lr_ratio"));
    assert!(ember_finetune::FineTuneConfig::default().validate().is_ok());
}
