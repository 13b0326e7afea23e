//! Splits, folds and subsets: disjoint, complete, seeded, stratified.

use std::collections::BTreeSet;

use ember_data::{k_fold, per_class_subset, random_split, stratified_split, Dataset, LabelledImages};

fn skewed() -> LabelledImages {
    // 300 examples: class 0 x200, class 1 x80, class 2 x20.
    let labels: Vec<u8> = (0..300)
        .map(|i| {
            if i < 200 {
                0
            } else if i < 280 {
                1
            } else {
                2
            }
        })
        .collect();
    LabelledImages::new(vec![0; 300 * 4], labels, 2, 2, 3).unwrap()
}

#[test]
fn random_split_is_disjoint_complete_and_seeded() {
    let s = random_split(101, 0.2, 5).unwrap();
    assert_eq!((s.train.len(), s.val.len()), (81, 20));
    let all: BTreeSet<usize> = s.train.iter().chain(&s.val).copied().collect();
    assert_eq!(all.len(), 101);
    assert_eq!(random_split(101, 0.2, 5).unwrap(), s);
    assert_ne!(random_split(101, 0.2, 6).unwrap(), s);
    assert!(random_split(10, 1.0, 0).is_err());
}

#[test]
fn stratified_split_keeps_each_class_share() {
    let data = skewed();
    let s = stratified_split(&data, 0.25, 1).unwrap();
    let count = |idx: &[usize], c: u32| idx.iter().filter(|&&i| data.label(i).unwrap() == c).count();
    assert_eq!((count(&s.val, 0), count(&s.val, 1), count(&s.val, 2)), (50, 20, 5));
    assert_eq!(s.train.len() + s.val.len(), 300);
}

#[test]
fn k_fold_validates_every_index_exactly_once() {
    let folds = k_fold(23, 5, 3).unwrap();
    assert_eq!(folds.len(), 5);
    let mut seen = [0; 23];
    for f in &folds {
        assert_eq!(f.train.len() + f.val.len(), 23);
        for &i in &f.val {
            seen[i] += 1;
            assert!(!f.train.contains(&i));
        }
    }
    assert!(seen.iter().all(|&c| c == 1));
    assert!(k_fold(3, 5, 0).is_err());
}

#[test]
fn per_class_subset_takes_at_most_n_of_each_class() {
    let data = skewed();
    let subset = per_class_subset(&data, 30, 2).unwrap();
    let count = |c: u32| subset.iter().filter(|&&i| data.label(i).unwrap() == c).count();
    assert_eq!((count(0), count(1), count(2)), (30, 30, 20));
    assert_eq!(per_class_subset(&data, 30, 2).unwrap(), subset);
}

#[test]
fn splits_that_empty_a_side_or_a_class_are_refused() {
    let data = skewed();
    // 99.9 % of 200, 80 or 20 examples rounds to all of them: no class keeps a training example.
    let err = stratified_split(&data, 0.999, 0).unwrap_err().to_string();
    assert!(err.contains("all 200 examples of class 0") && err.contains("none to train on"), "{err}");
    // 0.99 keeps 2 of class 0 and 1 of class 1, but rounds class 2's 20 to 20.
    let err = stratified_split(&data, 0.99, 0).unwrap_err().to_string();
    assert!(err.contains("all 20 examples of class 2"), "{err}");
    assert!(random_split(3, 0.9, 0).is_err(), "3 examples at 90 % leave nothing to train on");
    assert!(random_split(3, 0.1, 0).is_err(), "3 examples at 10 % leave nothing to validate on");
    assert!(random_split(3, 0.0, 0).is_ok(), "no validation asked for");
    assert!(per_class_subset(&data, 0, 0).is_err());
}
