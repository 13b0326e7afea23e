//! `ember convert` and `ember inspect`.

use serde_json::json;

use crate::args::{ConvertArgs, InspectArgs};

pub fn convert(args: &ConvertArgs) -> anyhow::Result<()> {
    // Parsed before anything is read, so a bad rule fails fast.
    let rules = ember_finetune::parse_rules(&args.rename.rename)?;
    let n = ember_finetune::convert_to_safetensors_with(&args.input, &args.output, &rules)?;
    let renamed = if rules.is_empty() { String::new() } else { format!(" ({} renaming rules)", rules.len()) };
    println!("{}: {n} tensors written to {}{renamed}", args.input.display(), args.output.display());
    if args.report.json {
        println!("{}", json!({"input": args.input, "output": args.output, "tensors": n, "rules": rules.len()}));
    }
    Ok(())
}

/// Buffers PyTorch keeps beside parameters; not counted as parameters.
fn is_buffer(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var") || name.ends_with("num_batches_tracked")
}

pub fn inspect(args: &InspectArgs) -> anyhow::Result<()> {
    let (format, tensors) = ember_finetune::inspect(&args.file)?;
    let width = tensors.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
    println!("{} ({format:?}): {} tensors", args.file.display(), tensors.len());
    println!("{:<width$}  {:<6}  shape", "name", "dtype");
    for t in &tensors {
        println!("{:<width$}  {:<6}  {:?}", t.name, t.dtype.as_str(), t.shape);
    }
    let params: usize = tensors.iter().filter(|t| !is_buffer(&t.name)).map(|t| t.shape.iter().product::<usize>()).sum();
    let buffers: usize = tensors.iter().filter(|t| is_buffer(&t.name)).map(|t| t.shape.iter().product::<usize>()).sum();
    println!("parameters: {params}  (buffers: {buffers} values)");
    if args.report.json {
        let list: Vec<_> =
            tensors.iter().map(|t| json!({"name": t.name, "dtype": t.dtype.as_str(), "shape": t.shape})).collect();
        println!(
            "{}",
            json!({"file": args.file, "format": format!("{format:?}"), "parameters": params, "tensors": list})
        );
    }
    Ok(())
}
