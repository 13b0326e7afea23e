//! A continual-learning task sequence: disjoint groups of one dataset's classes, learned one
//! after another (split MNIST, split Fashion-MNIST).

use std::sync::Arc;

use ember_data::{Dataset, Subset};

use crate::{Error, Result};

/// The tasks of a sequence, each a non-empty set of classes; no class is in two tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSequence {
    tasks: Vec<Vec<u32>>,
    classes: usize,
}

impl TaskSequence {
    /// `tasks` over a dataset of `classes` classes. Fails naming the task at fault when one is
    /// empty, names a class `>= classes`, or shares a class with an earlier task.
    pub fn new(tasks: Vec<Vec<u32>>, classes: usize) -> Result<Self> {
        let invalid = |detail: String| Err(Error::invalid("task sequence", detail));
        if tasks.is_empty() {
            return invalid("no tasks".into());
        }
        let mut owner: Vec<Option<usize>> = vec![None; classes];
        for (t, task) in tasks.iter().enumerate() {
            if task.is_empty() {
                return invalid(format!("task {} has no classes", t + 1));
            }
            for &c in task {
                match owner.get_mut(c as usize) {
                    None => return invalid(format!("task {} names class {c}, but the data has {classes}", t + 1)),
                    Some(Some(first)) if *first == t => {
                        return invalid(format!("task {} names class {c} twice", t + 1));
                    }
                    Some(Some(first)) => {
                        return invalid(format!(
                            "class {c} is in task {} and task {}; tasks must not overlap",
                            *first + 1,
                            t + 1
                        ))
                    }
                    Some(slot) => *slot = Some(t),
                }
            }
        }
        Ok(Self { tasks, classes })
    }

    /// Parses `0-4,5-9` (comma-separated tasks; a task is a class, a range `a-b`, or several
    /// joined by `+`: `0+2+4,1+3+5`) or a bare count `5` (that many tasks of equal size over
    /// classes `0..classes` in order, which must divide evenly).
    pub fn parse(spec: &str, classes: usize) -> Result<Self> {
        let spec = spec.trim();
        let bad = |detail: String| Error::invalid(format!("tasks `{spec}`"), detail);
        if !spec.contains([',', '-', '+']) {
            let n: usize = spec.parse().map_err(|_| bad("not a task count or a list of class ranges".into()))?;
            if n == 0 || classes == 0 || !classes.is_multiple_of(n) {
                return Err(bad(format!("{n} tasks of equal size do not divide {classes} classes")));
            }
            let size = classes / n;
            let tasks = (0..n).map(|t| (t * size..(t + 1) * size).map(|c| c as u32).collect()).collect();
            return Self::new(tasks, classes);
        }
        let class = |s: &str| s.trim().parse::<u32>().map_err(|_| bad(format!("`{}` is not a class index", s.trim())));
        let mut tasks = Vec::new();
        for (t, task) in spec.split(',').enumerate() {
            let mut members = Vec::new();
            for part in task.split('+').filter(|p| !p.trim().is_empty()) {
                match part.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (class(a)?, class(b)?);
                        if a > b {
                            return Err(bad(format!("task {}: the range {a}-{b} is empty", t + 1)));
                        }
                        members.extend(a..=b);
                    }
                    None => members.push(class(part)?),
                }
            }
            tasks.push(members);
        }
        Self::new(tasks, classes).map_err(|e| match e {
            Error::Invalid { detail, .. } => bad(detail),
            e => e,
        })
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether there are no tasks (never true for a constructed sequence).
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The tasks' classes, in order.
    pub fn tasks(&self) -> &[Vec<u32>] {
        &self.tasks
    }

    /// The dataset's class count.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The task that holds class `class`, if any.
    pub fn task_of(&self, class: u32) -> Option<usize> {
        self.tasks.iter().position(|t| t.contains(&class))
    }

    /// The classes of tasks `0..=last`.
    pub fn seen(&self, last: usize) -> Vec<u32> {
        self.tasks.iter().take(last + 1).flatten().copied().collect()
    }

    /// One [`Subset`] of `data` per task: its examples whose label is one of the task's classes,
    /// in dataset order. Fails naming `what` ("training data", "test data") and the task when
    /// a task has no example, or when the data's class count differs from the sequence's.
    pub fn subsets(&self, data: &Arc<dyn Dataset>, what: &str) -> Result<Vec<Subset>> {
        if data.classes() != self.classes {
            return Err(Error::invalid(
                what,
                format!("{} classes, but the task sequence was made for {}", data.classes(), self.classes),
            ));
        }
        let mut indices = vec![Vec::new(); self.tasks.len()];
        for i in 0..data.len() {
            if let Some(t) = self.task_of(data.label(i)?) {
                indices[t].push(i);
            }
        }
        indices
            .into_iter()
            .enumerate()
            .map(|(t, idx)| {
                if idx.is_empty() {
                    return Err(Error::invalid(
                        what,
                        format!("task {} (classes {:?}) has no examples", t + 1, self.tasks[t]),
                    ));
                }
                Ok(Subset::new(data.clone(), idx)?)
            })
            .collect()
    }
}
