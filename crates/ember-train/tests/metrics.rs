//! Metrics against scikit-learn on fixed predictions (fixture: `fixtures/gen_metrics.py`).

use candle_core::{Device, Tensor};
use ember_train::{Average, ConfusionMatrix, RegressionMetrics, TopKAccuracy};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/metrics.json")).unwrap()
}

fn ints(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() < 1e-12, "{what}: {a} vs scikit-learn {b}");
}

#[test]
fn classification_metrics_match_scikit_learn() {
    let f = fixture();
    let classes = f["classes"].as_u64().unwrap() as usize;
    let mut m = ConfusionMatrix::new(classes);
    for (t, p) in ints(&f["y_true"]).into_iter().zip(ints(&f["y_pred"])) {
        m.add(t, p);
    }
    close(m.accuracy(), f["accuracy"].as_f64().unwrap(), "accuracy");
    let cm: Vec<Vec<u64>> = f["confusion_matrix"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| ints(r).into_iter().map(|v| v as u64).collect())
        .collect();
    assert_eq!(m.rows(), cm);
    let per = &f["per_class"];
    for c in 0..classes {
        close(m.precision(c), floats(&per["precision"])[c], &format!("precision[{c}]"));
        close(m.recall(c), floats(&per["recall"])[c], &format!("recall[{c}]"));
        close(m.f1(c), floats(&per["f1"])[c], &format!("f1[{c}]"));
    }
    for (name, avg) in [("macro", Average::Macro), ("micro", Average::Micro), ("weighted", Average::Weighted)] {
        let r = &f["averaged"][name];
        close(m.precision_avg(avg), r["precision"].as_f64().unwrap(), &format!("{name} precision"));
        close(m.recall_avg(avg), r["recall"].as_f64().unwrap(), &format!("{name} recall"));
        close(m.f1_avg(avg), r["f1"].as_f64().unwrap(), &format!("{name} f1"));
    }
}

#[test]
fn top_k_accuracy_matches_scikit_learn_across_batches() {
    let f = fixture();
    let scores: Vec<Vec<f32>> =
        f["scores"].as_array().unwrap().iter().map(|r| floats(r).into_iter().map(|v| v as f32).collect()).collect();
    let labels: Vec<u32> = ints(&f["y_true"]).into_iter().map(|v| v as u32).collect();
    for k in [1usize, 2, 3] {
        let mut acc = TopKAccuracy::new(k);
        // Streamed in uneven batches.
        for (lo, hi) in [(0, 7), (7, 150), (150, 300)] {
            let s = Tensor::new(scores[lo..hi].to_vec(), &Device::Cpu).unwrap();
            let l = Tensor::new(&labels[lo..hi], &Device::Cpu).unwrap();
            acc.add(&s, &l).unwrap();
        }
        close(acc.value(), f["top_k"][k.to_string()].as_f64().unwrap(), &format!("top-{k}"));
    }
}

#[test]
fn regression_metrics_match_scikit_learn() {
    let r = &fixture()["regression"];
    let (t, p) = (floats(&r["targets"]), floats(&r["predictions"]));
    let mut m = RegressionMetrics::new();
    m.add(&p[..50], &t[..50]);
    m.add(&p[50..], &t[50..]);
    let close = |a: f64, b: f64, w: &str| assert!((a - b).abs() < 1e-10, "{w}: {a} vs {b}");
    close(m.mse(), r["mse"].as_f64().unwrap(), "mse");
    close(m.mae(), r["mae"].as_f64().unwrap(), "mae");
    close(m.r2(), r["r2"].as_f64().unwrap(), "r2");
}
