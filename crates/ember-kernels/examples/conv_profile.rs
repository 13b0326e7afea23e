//! Forward and backward time of each distinct convolution of a ResNet-18 training step at
//! 224 px, batch 16 (the fastest of `reps` passes each: on a shared machine other work only
//! ever adds time), and the step's totals with each shape counted as often as the network has it.
//!
//! `RAYON_NUM_THREADS=2 cargo run --release -p ember-kernels --example conv_profile -- [index] [reps] [both|input|weight|eval]`
//!
//! `index` picks one row of the table (all when absent or `all`); the mode chooses which
//! gradients the backward pass computes (`both`: input and weight, as in training; the stem's
//! input never needs one) or runs the forward pass alone under `no_grad` (`eval`).

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use ember_kernels::{conv2d, Conv2dParams};

/// One distinct convolution of ResNet-18.
struct Shape {
    /// How many times the network has it.
    count: usize,
    c: usize,
    hw: usize,
    o: usize,
    k: usize,
    stride: usize,
    /// Whether its input takes a gradient (not the stem's: the images).
    input_gradient: bool,
}

const fn shape(count: usize, c: usize, hw: usize, o: usize, k: usize, stride: usize, input_gradient: bool) -> Shape {
    Shape { count, c, hw, o, k, stride, input_gradient }
}

const RESNET18: [Shape; 11] = [
    shape(1, 3, 224, 64, 7, 2, false),
    shape(4, 64, 56, 64, 3, 1, true),
    shape(1, 64, 56, 128, 3, 2, true),
    shape(3, 128, 28, 128, 3, 1, true),
    shape(1, 64, 56, 128, 1, 2, true),
    shape(1, 128, 28, 256, 3, 2, true),
    shape(3, 256, 14, 256, 3, 1, true),
    shape(1, 128, 28, 256, 1, 2, true),
    shape(1, 256, 14, 512, 3, 2, true),
    shape(3, 512, 7, 512, 3, 1, true),
    shape(1, 256, 14, 512, 1, 2, true),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    ember_kernels::process::tune_for_training();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let only: Option<usize> = match args.first().map(String::as_str) {
        None | Some("all") => None,
        Some(i) => Some(i.parse()?),
    };
    let reps: usize = args.get(1).map_or(Ok(5), |r| r.parse())?;
    let mode = args.get(2).map_or("both", String::as_str);
    if !["both", "input", "weight", "eval"].contains(&mode) {
        return Err(format!("mode {mode:?}: expected both, input, weight or eval").into());
    }
    let batch = 16;
    let (mut forward_total, mut backward_total) = (0.0, 0.0);
    for (i, s) in RESNET18.iter().enumerate().filter(|(i, _)| only.is_none_or(|o| o == *i)) {
        let x = Tensor::randn(0f32, 1., (batch, s.c, s.hw, s.hw), &Device::Cpu)?;
        let w = Tensor::randn(0f32, 0.05, (s.o, s.c, s.k, s.k), &Device::Cpu)?;
        let (xv, wv) = (Var::from_tensor(&x)?, Var::from_tensor(&w)?);
        let x = if s.input_gradient && mode != "weight" { xv.as_tensor() } else { &x };
        let w = if s.input_gradient && mode == "input" { &w } else { wv.as_tensor() };
        let p = Conv2dParams { padding: s.k / 2, stride: s.stride, dilation: 1, groups: 1 };
        let (mut forward, mut backward) = (f64::MAX, f64::MAX);
        for _ in 0..reps {
            let start = Instant::now();
            if mode == "eval" {
                let _guard = ember_kernels::no_grad();
                conv2d(x, w, None, p)?;
                forward = forward.min(start.elapsed().as_secs_f64());
                backward = 0.0;
                continue;
            }
            let y = conv2d(x, w, None, p)?;
            let forwarded = Instant::now();
            y.backward()?; // the output gradient is all ones
            forward = forward.min((forwarded - start).as_secs_f64());
            backward = backward.min(forwarded.elapsed().as_secs_f64());
        }
        forward_total += forward * s.count as f64;
        backward_total += backward * s.count as f64;
        println!(
            "#{i:<2} {} x {}x{}x{} -> {} k{} s{}: forward {:.1} ms, backward {:.1} ms",
            s.count,
            s.c,
            s.hw,
            s.hw,
            s.o,
            s.k,
            s.stride,
            forward * 1e3,
            backward * 1e3
        );
    }
    println!("step total: forward {:.0} ms, backward {:.0} ms", forward_total * 1e3, backward_total * 1e3);
    Ok(())
}
