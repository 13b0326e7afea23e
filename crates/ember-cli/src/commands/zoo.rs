//! `ember zoo list` and `ember zoo show`.

use anyhow::Context;
use ember_zoo::{ModelOptions, MODELS};
use serde_json::json;

use crate::args::{ZooListArgs, ZooShowArgs};

fn shape(input: (usize, usize, usize)) -> String {
    format!("{}x{}x{}", input.0, input.1, input.2)
}

pub fn list(args: &ZooListArgs) -> anyhow::Result<()> {
    println!("{:<20} {:>12} {:>11} {:<15} {:<10} summary", "name", "parameters", "input", "task", "pretrained");
    let mut rows = Vec::new();
    for m in MODELS {
        let params = ember_zoo::count_parameters(m.name, &m.default_options())?;
        let classes = if m.classes > 0 { format!(", {} classes", m.classes) } else { String::new() };
        println!(
            "{:<20} {:>12} {:>11} {:<15} {:<10} {}{classes}",
            m.name,
            ember_layers::with_commas(params),
            shape(m.input),
            m.task.to_string(),
            if m.pretrained.is_some() { "yes" } else { "no" },
            m.summary
        );
        rows.push(json!({
            "name": m.name, "parameters": params, "input": [m.input.0, m.input.1, m.input.2],
            "classes": m.classes, "task": m.task.to_string(), "pretrained": m.pretrained, "summary": m.summary,
        }));
    }
    if let Some(notes) =
        MODELS.iter().filter_map(|m| m.pretrained.map(|p| format!("  {}: {p}", m.name))).reduce(|a, b| a + "\n" + &b)
    {
        println!("pretrained weights with these parameter names (not bundled):\n{notes}");
    }
    if args.report.json {
        println!("{}", json!({ "models": rows }));
    }
    Ok(())
}

/// Parses `CxHxW`.
fn parse_input(text: &str) -> anyhow::Result<(usize, usize, usize)> {
    let dims: Vec<usize> = text
        .split(['x', 'X', ','])
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--input `{text}`: expected CxHxW, e.g. 3x224x224"))?;
    match dims[..] {
        [c, h, w] => Ok((c, h, w)),
        _ => anyhow::bail!("--input `{text}`: expected three dimensions CxHxW, e.g. 3x224x224"),
    }
}

pub fn show(args: &ZooShowArgs) -> anyhow::Result<()> {
    let info = ember_zoo::info(&args.name)?;
    let defaults = info.default_options();
    let input = args.input.as_deref().map(parse_input).transpose()?.unwrap_or(defaults.input);
    let options = ModelOptions { input, classes: args.classes.unwrap_or(defaults.classes), ..defaults };
    let summary = ember_zoo::summarize(&args.name, &options)?;
    println!("{} ({}), input {}", info.name, info.summary, fmt_shape(&summary.input));
    let width = summary.layers.iter().map(|l| l.name.len()).max().unwrap_or(5).max(5);
    let rule = "─".repeat(width + 36);
    println!("{rule}");
    println!("{:<width$} {:>22} {:>12}", "layer", "output shape", "params");
    println!("{rule}");
    for layer in &summary.layers {
        println!(
            "{:<width$} {:>22} {:>12}",
            layer.name,
            fmt_shape(&layer.output),
            ember_layers::with_commas(layer.params)
        );
    }
    println!("{rule}");
    println!("total parameters: {}", ember_layers::with_commas(summary.total_params));
    println!("buffers (batch-norm statistics, not trained): {}", ember_layers::with_commas(summary.buffer_elems));
    if args.report.json {
        let layers: Vec<_> =
            summary.layers.iter().map(|l| json!({"name": l.name, "output": l.output, "params": l.params})).collect();
        println!(
            "{}",
            json!({"model": summary.model, "input": summary.input, "layers": layers, "total_params": summary.total_params, "buffers": summary.buffer_elems})
        );
    }
    Ok(())
}

fn fmt_shape(dims: &[usize]) -> String {
    format!("({})", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
}
