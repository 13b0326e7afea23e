//! Continual learning on the bundled MNIST sample (digits 0-4, then 5-9): the accuracy matrix,
//! forgetting under naive fine-tuning, rehearsal, the EWC penalty's value and gradient, the
//! reservoir memory, LwF's loss, and the settings that cannot work.

use std::sync::{Arc, OnceLock};

use candle_core::{DType, Device, Tensor};
use ember_data::{mnist_sample, DataLoader, Dataset, LabelledImages, Split};
use ember_finetune::{
    distillation_loss, fisher_diagonal, label_masks, learn_continually, lwf_loss, soft_target_loss, AccuracyMatrix,
    ContinualConfig, ContinualReport, DistillConfig, Ewc, FineTuneModel, Method, ReplayBuffer, Setting, TaskSequence,
    MASKED,
};
use ember_layers::loss::cross_entropy;
use ember_zoo::ModelOptions;

/// The first 1,000 training digits (about 100 per class) and the first 500 test digits.
fn digits() -> (Arc<dyn Dataset>, Arc<dyn Dataset>) {
    static DATA: OnceLock<(Arc<LabelledImages>, Arc<LabelledImages>)> = OnceLock::new();
    let (train, test) = DATA.get_or_init(|| {
        let train = mnist_sample(Split::Train).unwrap();
        let test = mnist_sample(Split::Test).unwrap();
        let first = |n: usize| (0..n).collect::<Vec<_>>();
        (Arc::new(train.select(&first(1000)).unwrap()), Arc::new(test.select(&first(500)).unwrap()))
    });
    (train.clone(), test.clone())
}

fn split_digits() -> TaskSequence {
    TaskSequence::parse("0-4,5-9", 10).unwrap()
}

fn mlp() -> FineTuneModel {
    FineTuneModel::scratch("mlp", &ModelOptions::new((1, 28, 28), 10), 7).unwrap()
}

/// The same budget for every method: 2 epochs per task, batches of 32, Adam at 1e-3, seed 3.
fn config(method: Method, setting: Setting) -> ContinualConfig {
    ContinualConfig { method, setting, epochs_per_task: 2, batch_size: 32, lr: 1e-3, seed: 3, workers: 0 }
}

fn run(method: Method, setting: Setting) -> ContinualReport {
    let (train, test) = digits();
    learn_continually(&mlp(), &train, &test, &split_digits(), &config(method, setting), &mut |_, _| {}).unwrap()
}

fn naive_class_incremental() -> &'static ContinualReport {
    static REPORT: OnceLock<ContinualReport> = OnceLock::new();
    REPORT.get_or_init(|| run(Method::Naive, Setting::ClassIncremental))
}

#[test]
fn accuracy_matrix_is_lower_triangular_with_accuracies() {
    let report = naive_class_incremental();
    let rows = report.accuracy.rows();
    assert_eq!(rows.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 2]);
    assert!(rows.iter().flatten().all(|a| (0.0..=1.0).contains(a)), "{rows:?}");
    assert_eq!(report.tasks, vec![vec![0, 1, 2, 3, 4], vec![5, 6, 7, 8, 9]]);
    assert_eq!(report.history.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2]);
    let (train, test) = digits();
    assert_eq!(report.train_examples.iter().sum::<usize>(), train.len());
    assert_eq!(report.test_examples.iter().sum::<usize>(), test.len());
    let average = (rows[1][0] + rows[1][1]) / 2.0;
    assert!((report.accuracy.average_accuracy() - average).abs() < 1e-12);
    assert!((report.accuracy.forgetting().unwrap() - (rows[0][0] - rows[1][0])).abs() < 1e-12);
}

#[test]
fn naive_fine_tuning_forgets_the_first_task_in_the_class_incremental_setting() {
    let rows = naive_class_incremental().accuracy.rows().to_vec();
    assert!(rows[0][0] > 0.85, "task 1 was not learnt: {rows:?}");
    assert!(rows[1][1] > 0.75, "task 2 was not learnt: {rows:?}");
    // Trained only on 5-9, the one head predicts 5-9 for everything.
    assert!(rows[1][0] < rows[0][0] - 0.5, "no forgetting: {rows:?}");
}

#[test]
fn rehearsal_keeps_more_of_the_first_task_than_naive_with_the_same_budget() {
    let naive = naive_class_incremental().accuracy.rows().to_vec();
    let rehearsal = run(Method::Rehearsal { per_class: 10 }, Setting::ClassIncremental);
    let rows = rehearsal.accuracy.rows();
    assert!(rows[1][0] > naive[1][0] + 0.3, "rehearsal {rows:?} vs naive {naive:?}");
    assert!(rows[1][1] > 0.7, "rehearsal did not learn task 2: {rows:?}");
    // Task 2 trained on its own images plus 10 per old class, each repeated ~10 times.
    let task2 = naive_class_incremental().train_examples[1];
    assert_eq!(rehearsal.train_examples[1], task2 + 5 * 10 * (task2 as f64 / 5.0 / 10.0).round() as usize);
}

#[test]
fn task_incremental_setting_scores_each_task_among_its_own_classes() {
    let naive_task = run(Method::Naive, Setting::TaskIncremental);
    let class = naive_class_incremental().accuracy.rows().to_vec();
    let task = naive_task.accuracy.rows();
    // Knowing the task, the old head's rows still separate 0-4 far better than chance (0.2).
    assert!(task[1][0] > 0.6 && task[1][0] > class[1][0] + 0.3, "task {task:?} vs class {class:?}");
}

#[test]
fn ewc_and_lwf_train_both_settings_and_keep_at_least_what_naive_keeps() {
    let naive = naive_class_incremental().accuracy.rows().to_vec();
    let lwf = DistillConfig { temperature: 2.0, alpha: 0.5 };
    for method in [Method::Ewc { lambda: 100.0, fisher_samples: 50 }, Method::Lwf(lwf)] {
        for setting in [Setting::ClassIncremental, Setting::TaskIncremental] {
            let report = run(method, setting);
            let rows = report.accuracy.rows();
            assert_eq!(rows.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 2], "{method} {setting}");
            assert!(rows[0][0] > 0.85 && rows[1][1] > 0.5, "{method} {setting}: {rows:?}");
            assert!(rows[1][0] + 0.02 >= naive[1][0], "{method} {setting}: {rows:?} vs naive {naive:?}");
        }
    }
}

#[test]
fn ewc_penalty_is_zero_at_the_anchor_and_its_gradient_is_lambda_f_delta() {
    let model = mlp();
    let (train, _) = digits();
    let loader = DataLoader::new(train, 16).with_shuffle(1);
    let tasks = split_digits();
    let masks = label_masks(Setting::ClassIncremental, &tasks, 0).unwrap();
    let anchor = fisher_diagonal(&model, &model.store, &loader, &masks, 40, 5).unwrap();
    let fisher: std::collections::HashMap<_, _> = anchor.fisher.iter().cloned().collect();
    let all: Vec<f32> =
        anchor.fisher.iter().flat_map(|(_, f)| f.flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect();
    assert!(all.iter().all(|f| *f >= 0.0) && all.iter().any(|f| *f > 0.0));
    // Classes 5-9 are masked after task 1: their head rows had no say in any prediction.
    let head = fisher["fc3.weight"].to_vec2::<f32>().unwrap();
    assert!(head[5..].iter().flatten().all(|f| *f == 0.0));
    assert!(head[..5].iter().flatten().any(|f| *f > 0.0));

    let lambda = 30.0;
    let mut ewc = Ewc::new(lambda).unwrap();
    ewc.push(anchor.clone());
    assert_eq!(ewc.penalty(&model.store).unwrap().to_scalar::<f32>().unwrap(), 0.0);

    // Move every parameter by a fixed pattern δ and compare with λ/2 Σ F δ² and λ F δ.
    let mut expected = 0f64;
    let mut deltas = Vec::new();
    for (name, star) in &anchor.params {
        let n = star.elem_count();
        let delta: Vec<f32> = (0..n).map(|i| ((i * 7919 % 13) as f32 - 6.0) * 0.01).collect();
        let delta = Tensor::from_vec(delta, star.shape(), &Device::Cpu).unwrap();
        model.store.assign(name, &(star + &delta).unwrap()).unwrap();
        let f = &fisher[name];
        expected += (f * delta.sqr().unwrap()).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as f64;
        deltas.push((name.clone(), delta));
    }
    let penalty = ewc.penalty(&model.store).unwrap();
    let value = penalty.to_scalar::<f32>().unwrap() as f64;
    assert!(
        (value - lambda / 2.0 * expected).abs() <= 1e-4 * value.abs().max(1e-6),
        "{value} vs {}",
        lambda / 2.0 * expected
    );
    let grads = penalty.backward().unwrap();
    for (name, delta) in deltas {
        let var = model.store.get(&name).unwrap();
        let got = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want = (&fisher[&name] * delta).unwrap().affine(lambda, 0.0).unwrap();
        let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1e-3), "{name}: {g} vs {w}; {:?} {:?}", &got[..8], &want[..8]);
        }
    }
}

#[test]
fn replay_buffer_holds_at_most_k_per_class_and_replays_from_its_seed() {
    let (train, _) = digits();
    let all: Vec<usize> = (0..train.len()).collect();
    let fill = |seed: u64| {
        let mut b = ReplayBuffer::new(3, seed).unwrap();
        b.observe_all(train.as_ref(), &all).unwrap();
        b
    };
    let buffer = fill(11);
    assert_eq!(buffer.class_counts().values().copied().collect::<Vec<_>>(), vec![3; 10]);
    assert_eq!(buffer.len(), 30);
    for i in buffer.indices() {
        let label = train.label(i).unwrap();
        assert!(buffer.indices().iter().filter(|&&j| train.label(j).unwrap() == label).count() <= 3);
    }
    assert_eq!(fill(11).indices(), buffer.indices());
    assert_ne!(fill(12).indices(), buffer.indices());

    // A class with fewer examples than slots keeps them all.
    let mut small = ReplayBuffer::new(5, 0).unwrap();
    (0..2).for_each(|i| small.observe(i, 7));
    assert_eq!(small.indices(), vec![0, 1]);

    // Reservoir sampling: each of 50 examples is kept with probability 5/50.
    let mut kept = [0usize; 50];
    for seed in 0..2000 {
        let mut b = ReplayBuffer::new(5, seed).unwrap();
        (0..50).for_each(|i| b.observe(i, 0));
        b.indices().into_iter().for_each(|i| kept[i] += 1);
    }
    assert!(kept.iter().all(|&k| (130..=270).contains(&k)), "{kept:?}");
}

#[test]
fn lwf_loss_at_alpha_zero_is_cross_entropy_and_soft_targets_add_distillation() {
    let logits =
        Tensor::new(&[[1.0f32, -0.5, 2.0, 0.3], [0.2, 0.1, -1.0, 1.5], [0.0, 3.0, -2.0, 0.5]], &Device::Cpu).unwrap();
    let teacher =
        Tensor::new(&[[0.5f32, 1.5, 0.0, 0.0], [2.0, -1.0, 0.5, 0.5], [1.0, 1.0, 0.0, 0.0]], &Device::Cpu).unwrap();
    let labels = Tensor::new(&[2u32, 3, 3], &Device::Cpu).unwrap();
    let no_mask = Tensor::zeros((4, 4), DType::F32, &Device::Cpu).unwrap();
    let old = vec![Tensor::new(&[0u32, 1], &Device::Cpu).unwrap()];
    let scalar = |t: Tensor| t.to_scalar::<f32>().unwrap();
    let ce = scalar(cross_entropy(&logits, &labels).unwrap());
    let at = |alpha: f64| {
        scalar(
            lwf_loss(&logits, &teacher, &labels, &no_mask, &old, &DistillConfig { temperature: 2.0, alpha }).unwrap(),
        )
    };
    assert_eq!(at(0.0), ce);
    // α = 0.5: half the cross-entropy plus half the distillation of columns 0 and 1.
    let cols = |t: &Tensor| t.index_select(&old[0], 1).unwrap();
    let soft = scalar(soft_target_loss(&cols(&logits), &cols(&teacher), 2.0).unwrap());
    assert!(soft > 0.0);
    assert!((at(0.5) - (0.5 * ce + 0.5 * soft)).abs() < 1e-6);
    // A teacher that agrees with the student on the old columns adds nothing.
    let agree = scalar(
        lwf_loss(&logits, &logits, &labels, &no_mask, &old, &DistillConfig { temperature: 2.0, alpha: 0.5 }).unwrap(),
    );
    assert!((agree - 0.5 * ce).abs() < 1e-6);
    // distillation_loss is the same soft term over every column.
    let full =
        scalar(distillation_loss(&logits, &teacher, &labels, &DistillConfig { temperature: 2.0, alpha: 0.3 }).unwrap());
    let soft_all = scalar(soft_target_loss(&logits, &teacher, 2.0).unwrap());
    assert!((full - (0.3 * soft_all + 0.7 * ce)).abs() < 1e-6);
}

#[test]
fn label_masks_allow_seen_classes_or_the_examples_own_task() {
    let tasks = TaskSequence::parse("0-1,2-3,4-5", 6).unwrap();
    let class = label_masks(Setting::ClassIncremental, &tasks, 1).unwrap().to_vec2::<f32>().unwrap();
    assert!(class.iter().all(|row| row == &[0.0, 0.0, 0.0, 0.0, MASKED, MASKED]));
    let task = label_masks(Setting::TaskIncremental, &tasks, 1).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(task[1], vec![0.0, 0.0, MASKED, MASKED, MASKED, MASKED]);
    assert_eq!(task[3], vec![MASKED, MASKED, 0.0, 0.0, MASKED, MASKED]);
}

#[test]
fn accuracy_matrix_gives_average_accuracy_and_forgetting_as_defined() {
    let m = AccuracyMatrix::new(vec![vec![0.9], vec![0.7, 0.8], vec![0.5, 0.6, 0.9]]).unwrap();
    assert!((m.average_accuracy() - 2.0 / 3.0).abs() < 1e-12);
    // Task 1: best 0.9, final 0.5; task 2: best 0.8, final 0.6.
    assert!((m.forgetting().unwrap() - 0.3).abs() < 1e-12);
    assert_eq!(AccuracyMatrix::new(vec![vec![0.4]]).unwrap().forgetting(), None);
    assert!(AccuracyMatrix::new(vec![vec![0.4, 0.5]]).is_err());
    assert!(AccuracyMatrix::new(vec![vec![1.5]]).is_err());
}

#[test]
fn task_counts_split_the_classes_evenly() {
    assert_eq!(TaskSequence::parse("5", 10).unwrap().tasks()[4], vec![8, 9]);
    let tasks = TaskSequence::parse("0+2+4, 1+3+5-6", 10).unwrap();
    assert_eq!(tasks.tasks(), &[vec![0, 2, 4], vec![1, 3, 5, 6]]);
    assert_eq!((tasks.task_of(6), tasks.task_of(7)), (Some(1), None));
}

#[test]
fn settings_that_cannot_work_are_errors_naming_the_value() {
    let message = |spec: &str| TaskSequence::parse(spec, 10).unwrap_err().to_string();
    assert!(message("0-4,4-9").contains("class 4 is in task 1 and task 2"), "{}", message("0-4,4-9"));
    assert!(message("0-4,,5-9").contains("task 2 has no classes"), "{}", message("0-4,,5-9"));
    assert!(message("4-2,5-9").contains("4-2 is empty"), "{}", message("4-2,5-9"));
    assert!(message("0-4,5-10").contains("class 10"), "{}", message("0-4,5-10"));
    assert!(message("3").contains("3 tasks"), "{}", message("3"));
    assert!(message("0-4,five").contains("`five`"), "{}", message("0-4,five"));

    // A task without examples in the data.
    let (train, test) = digits();
    let low: Vec<usize> = (0..train.len()).filter(|&i| train.label(i).unwrap() < 5).collect();
    let low: Arc<dyn Dataset> = Arc::new(ember_data::Subset::new(train, low).unwrap());
    let err = learn_continually(&mlp(), &low, &test, &split_digits(), &ContinualConfig::default(), &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("training data") && err.contains("task 2") && err.contains("no examples"), "{err}");

    let bad = |method: Method| config(method, Setting::ClassIncremental).validate().unwrap_err().to_string();
    assert!(bad(Method::Rehearsal { per_class: 0 }).contains("0 images per class"));
    let err = bad(Method::Ewc { lambda: -1.0, fisher_samples: 10 });
    assert!(err.contains("lambda") && err.contains("-1"), "{err}");
    for t in [0.0, -2.0] {
        let err = bad(Method::Lwf(DistillConfig { temperature: t, alpha: 0.5 }));
        assert!(err.starts_with("lwf") && err.contains("temperature") && err.contains(&format!("got {t}")), "{err}");
    }
    let err = bad(Method::Lwf(DistillConfig { temperature: 2.0, alpha: 1.5 }));
    assert!(err.contains("1.5"), "{err}");
    assert!(ContinualConfig { epochs_per_task: 0, ..ContinualConfig::default() }.validate().is_err());
}
