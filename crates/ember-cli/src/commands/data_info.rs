//! `ember data info`: counts per split and per class of any data ember reads.

use ember_data::{ColorMode, Dataset};
use serde_json::json;

use crate::args::DataInfoArgs;

fn class_counts(set: &dyn Dataset, classes: usize) -> anyhow::Result<Vec<usize>> {
    let mut counts = vec![0; classes];
    for i in 0..set.len() {
        let label = set.label(i)? as usize;
        anyhow::ensure!(label < classes, "{} has label {label}, outside {classes} classes", set.origin(i));
        counts[label] += 1;
    }
    Ok(counts)
}

pub fn run(args: &DataInfoArgs) -> anyhow::Result<()> {
    let data = args.data.open(ColorMode::Rgb, false)?;
    let names = &data.class_names;
    let shape = crate::data::fixed_input(&data)?;
    let mut splits = Vec::new();
    for (label, set) in [("train", Some(&data.train)), ("val", data.val.as_ref()), ("test", data.test.as_ref())] {
        if let Some(set) = set {
            splits.push((label, set.len(), class_counts(set.as_ref(), names.len())?));
        }
    }
    let size = shape.map_or_else(|| "images of any size".to_string(), |(c, h, w)| format!("examples {c}x{h}x{w}"));
    println!("{} data: {} classes, {size}", data.kind, names.len());
    print!("{:>16}", "class");
    for (label, _, _) in &splits {
        print!(" {label:>8}");
    }
    println!();
    for (c, name) in names.iter().enumerate() {
        print!("{name:>16}");
        for (_, _, counts) in &splits {
            print!(" {:>8}", counts[c]);
        }
        println!();
    }
    print!("{:>16}", "total");
    for (_, n, _) in &splits {
        print!(" {n:>8}");
    }
    println!();
    if args.report.json {
        let out = json!({
            "dataset": data.kind.name(),
            "classes": names,
            "example_shape": shape.map(|(c, h, w)| [c, h, w]),
            "splits": splits.iter().map(|(name, n, counts)| json!({"split": name, "examples": n, "per_class": counts})).collect::<Vec<_>>(),
        });
        println!("{out}");
    }
    Ok(())
}
