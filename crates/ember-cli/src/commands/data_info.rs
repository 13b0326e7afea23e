//! `ember data info`.

use ember_data::{KnownDataset, Split};
use serde_json::json;

use crate::args::DataInfoArgs;

pub fn run(args: &DataInfoArgs) -> anyhow::Result<()> {
    let dataset: KnownDataset = args.dataset.parse()?;
    let data_dir = args.data_dir.as_deref();
    let names = dataset.class_names();
    let mut splits = Vec::new();
    for (split, label) in [(Split::Train, "train"), (Split::Test, "test")] {
        let set = super::load_split(dataset, data_dir, split)?;
        splits.push((label, set.len(), set.height(), set.width(), set.class_counts()));
    }
    println!("{dataset}: {} classes, images {}x{}", names.len(), splits[0].2, splits[0].3);
    println!("{:>12} {:>8} {:>8}", "class", "train", "test");
    for (c, name) in names.iter().enumerate() {
        println!("{:>12} {:>8} {:>8}", name, splits[0].4[c], splits[1].4[c]);
    }
    println!("{:>12} {:>8} {:>8}", "total", splits[0].1, splits[1].1);
    if args.json {
        let out = json!({
            "dataset": dataset.name(),
            "classes": names,
            "image_size": [splits[0].2, splits[0].3],
            "splits": splits.iter().map(|(name, n, _, _, counts)| json!({"split": name, "images": n, "per_class": counts})).collect::<Vec<_>>(),
        });
        println!("{out}");
    }
    Ok(())
}
