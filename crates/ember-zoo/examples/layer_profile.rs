//! Forward time of every layer of a zoo model at its default input (224 px for the ResNets and
//! EfficientNet-Lite), read off the model's layer taps: the time between one layer reporting
//! its output and the next is that layer's op (candle's CPU ops are synchronous). Medians over
//! the timed passes, then the layers summed by kind (the name's last component), largest first.
//!
//! `RAYON_NUM_THREADS=2 cargo run --release -p ember-zoo --example layer_profile -- efficientnet-lite0 [batch] [eval|train]`
//!
//! Evaluation passes run under `no_grad` with folded batch norms, as `ember eval` does; training
//! passes use batch statistics and record the graph (the backward pass is not timed here).

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    ember_kernels::process::tune_for_training();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().map_or("efficientnet-lite0", String::as_str);
    let batch: usize = args.get(1).map_or(Ok(16), |b| b.parse())?;
    let train = args.get(2).is_some_and(|m| m == "train");
    let options = ember_zoo::info(name)?.default_options();
    let varmap = VarMap::new();
    let model = ember_zoo::build_with(name, &options, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    let (c, h, w) = options.input;
    let x = Tensor::randn(0f32, 1., (batch, c, h, w), &Device::Cpu)?;
    let mut per_layer: Vec<(String, Vec<f64>)> = Vec::new();
    // The fastest of several passes: on a shared machine, other work only ever adds time.
    let (warmup, timed) = (1, 9);
    let mut whole_passes = Vec::new();
    for pass in 0..warmup + timed {
        let _guard = (!train).then(ember_kernels::no_grad);
        let pass_start = Instant::now();
        let mut index = 0;
        let mut last = Instant::now();
        let mut tap = |layer: &str, _: &Tensor| {
            let ms = last.elapsed().as_secs_f64() * 1e3;
            if pass == 0 && index == per_layer.len() {
                per_layer.push((layer.to_string(), Vec::new()));
            }
            if pass >= warmup {
                per_layer[index].1.push(ms);
            }
            index += 1;
            last = Instant::now();
        };
        model.forward_tapped(&x, train, &mut tap)?;
        if pass >= warmup {
            whole_passes.push(pass_start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let fastest = |v: &mut Vec<f64>| v.iter().copied().fold(f64::INFINITY, f64::min);
    let mut by_kind: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut total = 0.0;
    println!(
        "{name}, batch {batch}, {} mode: forward ms per layer (fastest of {timed})",
        if train { "train" } else { "eval" }
    );
    for (layer, times) in &mut per_layer {
        let ms = fastest(times);
        total += ms;
        println!("{layer:40} {ms:8.2}");
        let kind = layer.rsplit('.').next().unwrap_or(layer).to_string();
        let entry = by_kind.entry(kind).or_default();
        entry.0 += ms;
        entry.1 += 1;
    }
    let mut kinds: Vec<_> = by_kind.into_iter().collect();
    kinds.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    whole_passes.sort_by(f64::total_cmp);
    println!(
        "\nwhole passes: fastest {:.1} ms, median {:.1} ms (the layers' fastest add up to {total:.1})",
        whole_passes[0],
        whole_passes[whole_passes.len() / 2]
    );
    println!("\nby kind (sum of fastest {total:.1} ms):");
    for (kind, (ms, n)) in kinds {
        println!("{kind:24} {n:3} layers {ms:8.2} ms {:5.1} %", 100.0 * ms / total);
    }
    Ok(())
}
