//! Tabular data: numeric feature columns and an integer label column in a CSV file.

use std::path::{Path, PathBuf};

use crate::dataset::out_of_range;
use crate::{Dataset, Error, Example, Features, Result};

/// The most classes a CSV file may have: labels are `0..MAX_CLASSES`.
pub const MAX_CLASSES: usize = 100_000;

/// Which column holds the class label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelColumn {
    /// The last column.
    Last,
    /// The column at this 0-based position.
    Index(usize),
    /// The column with this header name (needs a header line).
    Name(String),
}

/// Options of [`CsvDataset`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// Where the label is.
    pub label: LabelColumn,
    /// Whether the first line names the columns.
    pub has_header: bool,
    /// Field separator.
    pub delimiter: char,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self { label: LabelColumn::Last, has_header: true, delimiter: ',' }
    }
}

/// Rows of f32 features with a class label each. Quoted fields are not supported; every row
/// must have the same number of fields; labels are non-negative integers.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvDataset {
    features: Vec<f32>,
    labels: Vec<u32>,
    width: usize,
    columns: Vec<String>,
    classes: usize,
}

impl CsvDataset {
    /// Parses `path`; errors name the file and line.
    pub fn load(path: &Path, options: &CsvOptions) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::Io(ember_io::IoError { path: path.to_path_buf(), source }))?;
        Self::parse(&text, path, options)
    }

    /// Parses CSV text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path, options: &CsvOptions) -> Result<Self> {
        let err = |line: usize, detail: String| Error::Csv { path: PathBuf::from(path), line, detail };
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let split = |l: &str| l.split(options.delimiter).map(|f| f.trim().to_string()).collect::<Vec<_>>();
        let header = if options.has_header { lines.next().map(|(_, l)| split(l)) } else { None };
        let mut rows = lines.peekable();
        let n_fields = match (&header, rows.peek()) {
            (Some(h), _) => h.len(),
            (None, Some((_, l))) => split(l).len(),
            (None, None) => 0,
        };
        if n_fields < 2 {
            return Err(err(1, format!("need at least one feature and one label column, found {n_fields} column(s)")));
        }
        let label_at = match &options.label {
            LabelColumn::Last => n_fields - 1,
            LabelColumn::Index(i) if *i < n_fields => *i,
            LabelColumn::Index(i) => {
                return Err(err(1, format!("label column {i} out of range for {n_fields} columns")))
            }
            LabelColumn::Name(name) => match header.as_ref().and_then(|h| h.iter().position(|c| c == name)) {
                Some(i) => i,
                None => return Err(err(1, format!("no column named `{name}` in the header"))),
            },
        };
        let columns = header.clone().unwrap_or_else(|| (0..n_fields).map(|i| format!("column_{i}")).collect());
        let (mut features, mut labels) = (Vec::new(), Vec::new());
        for (i, line) in rows {
            let line_no = i + 1;
            if line.contains('"') {
                return Err(err(line_no, "quoted fields are not supported".into()));
            }
            let fields = split(line);
            if fields.len() != n_fields {
                return Err(err(line_no, format!("{} fields, expected {n_fields}", fields.len())));
            }
            for (j, f) in fields.iter().enumerate() {
                if j == label_at {
                    let label: u32 =
                        f.parse().map_err(|_| err(line_no, format!("label `{f}` is not a non-negative integer")))?;
                    // Labels size the class count (and so every per-class table and head).
                    if label as usize >= MAX_CLASSES {
                        return Err(err(
                            line_no,
                            format!("label {label} is beyond the limit of {MAX_CLASSES} classes"),
                        ));
                    }
                    labels.push(label);
                } else {
                    let v: f32 = f
                        .parse()
                        .map_err(|_| err(line_no, format!("column `{}`: `{f}` is not a number", columns[j])))?;
                    features.push(v);
                }
            }
        }
        let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
        Ok(Self { features, labels, width: n_fields - 1, columns, classes })
    }

    /// Number of feature columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Column names (from the header, or `column_{i}`), the label column included.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }
}

impl Dataset for CsvDataset {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, index: usize) -> Result<Example> {
        let label = *self.labels.get(index).ok_or_else(|| out_of_range("csv", index, self.labels.len()))?;
        let row = self.features[index * self.width..(index + 1) * self.width].to_vec();
        Ok(Example { features: Features::Vector(row), label })
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn label(&self, index: usize) -> Result<u32> {
        self.labels.get(index).copied().ok_or_else(|| out_of_range("csv", index, self.labels.len()))
    }
}
