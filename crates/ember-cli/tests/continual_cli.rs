//! `ember continual` end to end on the bundled MNIST sample: the JSON line holds the accuracy
//! matrix (one row per task, one entry per task so far), average accuracy and forgetting as
//! computed from it, and the memory's replayed images; overlapping tasks are a one-line error.

mod common;

use common::{assert_one_line_error, ember};

#[test]
fn continual_rehearsal_reports_the_accuracy_matrix_and_forgetting() {
    let out = ember(&[
        "continual",
        "--method",
        "rehearsal",
        "--setting",
        "class",
        "--tasks",
        "0-4,5-9",
        "--model",
        "mlp",
        "--epochs-per-task",
        "1",
        "--replay-per-class",
        "5",
        "--train-limit",
        "600",
        "--test-limit",
        "300",
        "--seed",
        "4",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("test accuracy (%) after training task i"), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let rows: Vec<Vec<f64>> = serde_json::from_value(json["accuracy"].clone()).unwrap();
    assert_eq!(rows.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 2]);
    assert!(rows.iter().flatten().all(|a| (0.0..=1.0).contains(a)), "{rows:?}");
    let average = json["average_accuracy"].as_f64().unwrap();
    assert!((average - (rows[1][0] + rows[1][1]) / 2.0).abs() < 1e-12);
    let forgetting = json["forgetting"].as_f64().unwrap();
    assert!((forgetting - (rows[0][0] - rows[1][0])).abs() < 1e-12);
    assert_eq!(json["tasks"], serde_json::json!([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]));
    // Task 2 trains on its own images plus 5 kept per old class, repeated.
    let examples: Vec<usize> = serde_json::from_value(json["train_examples"].clone()).unwrap();
    assert!(examples[1] > 600 - examples[0], "{examples:?}");
    assert_eq!(json["test_examples"].as_array().unwrap().iter().filter_map(|v| v.as_u64()).sum::<u64>(), 300);

    let out = ember(&["continual", "--tasks", "0-4,4-9", "--train-limit", "100"]);
    assert_one_line_error(&out, &["tasks `0-4,4-9`", "class 4 is in task 1 and task 2"]);
}
