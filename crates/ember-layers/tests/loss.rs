//! Every loss against PyTorch (`fixtures/gen_losses.py`) and finite differences.

mod common;

use candle_core::{Device, Tensor};
use common::{cases, gradcheck, parity, random, values};
use ember_layers::loss::{
    self, binary_cross_entropy_with_logits, cross_entropy_with, huber, kl_div, l1, mse, nll, smooth_l1,
    BceWithLogitsConfig, CrossEntropyConfig, NllConfig, Reduction,
};
use serde_json::Value;

struct Inputs {
    targets: Tensor,
    weight: Tensor,
    y_reg: Tensor,
    y_bin: Tensor,
    pos_weight: Tensor,
    p_target: Tensor,
}

fn inputs(all: &Value) -> Inputs {
    let i = &all["inputs"];
    let f = |k: &str, shape: &[usize]| Tensor::from_vec(values(&i[k]), shape, &Device::Cpu).unwrap();
    let targets: Vec<i64> = i["targets"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    Inputs {
        targets: Tensor::new(targets, &Device::Cpu).unwrap(),
        weight: f("weight", &[5]),
        y_reg: f("y_reg", &[4, 6]),
        y_bin: f("y_bin", &[4, 6]),
        pos_weight: f("pos_weight", &[6]),
        p_target: f("p_target", &[4, 6]),
    }
}

fn ce(weight: Option<Tensor>, smoothing: f64, reduction: Reduction) -> CrossEntropyConfig {
    CrossEntropyConfig { nll: NllConfig { weight, reduction, ..Default::default() }, label_smoothing: smoothing }
}

fn scalar(t: candle_core::Result<Tensor>) -> candle_core::Result<Tensor> {
    let t = t?;
    if t.rank() == 0 {
        t.reshape(1)
    } else {
        Ok(t)
    }
}

#[test]
fn losses_match_pytorch() {
    let all = cases(include_str!("fixtures/losses.json"));
    let i = inputs(&all);
    let w = Some(i.weight.clone());
    parity("cross_entropy_weighted_smoothed", &all["cross_entropy_weighted_smoothed"], &[], |_, x| {
        scalar(cross_entropy_with(x, &i.targets, &ce(w.clone(), 0.1, Reduction::Mean)))
    });
    parity("cross_entropy_sum_ignore", &all["cross_entropy_sum_ignore"], &[], |_, x| {
        scalar(cross_entropy_with(x, &i.targets, &ce(None, 0.0, Reduction::Sum)))
    });
    parity("cross_entropy_none_smoothed", &all["cross_entropy_none_smoothed"], &[], |_, x| {
        cross_entropy_with(x, &i.targets, &ce(None, 0.2, Reduction::None))
    });
    parity("nll_weighted", &all["nll_weighted"], &[], |_, x| {
        let cfg = NllConfig { weight: w.clone(), ..Default::default() };
        scalar(nll(&candle_nn::ops::log_softmax(x, 1)?, &i.targets, &cfg))
    });
    parity("bce_with_logits", &all["bce_with_logits"], &[], |_, x| {
        let cfg = BceWithLogitsConfig { pos_weight: Some(i.pos_weight.clone()), ..Default::default() };
        scalar(binary_cross_entropy_with_logits(x, &i.y_bin, &cfg))
    });
    parity("mse", &all["mse"], &[], |_, x| scalar(mse(x, &i.y_reg, Reduction::Mean)));
    parity("l1_sum", &all["l1_sum"], &[], |_, x| scalar(l1(x, &i.y_reg, Reduction::Sum)));
    parity("huber", &all["huber"], &[], |_, x| scalar(huber(x, &i.y_reg, 0.8, Reduction::Mean)));
    parity("smooth_l1", &all["smooth_l1"], &[], |_, x| scalar(smooth_l1(x, &i.y_reg, 0.5, Reduction::Mean)));
    parity("kl_div_batchmean", &all["kl_div_batchmean"], &[], |_, x| {
        scalar(kl_div(&candle_nn::ops::log_softmax(x, 1)?, &i.p_target, false, Reduction::BatchMean))
    });
}

#[test]
fn losses_pass_finite_difference_check() {
    let targets = Tensor::new(&[2i64, 0, -100, 1, 2], &Device::Cpu).unwrap();
    let weight = Tensor::new(&[0.5f64, 2.0, 1.5], &Device::Cpu).unwrap();
    let y = random(&[5, 3], 2);
    // Keep |x - y| away from the L1 kink and the Huber switch at 1.
    let x = (&y + (random(&[5, 3], 3).sign().unwrap() * 0.3).unwrap() + random(&[5, 3], 4).affine(0.05, 0.0).unwrap())
        .unwrap();
    let probs = candle_nn::ops::softmax(&random(&[5, 3], 5), 1).unwrap();
    let bin = candle_nn::ops::sigmoid(&random(&[5, 3], 6)).unwrap();
    let red = [Reduction::Mean, Reduction::Sum, Reduction::None];
    for r in red {
        for (w, eps) in [(None, 0.0), (Some(weight.clone()), 0.0), (Some(weight.clone()), 0.15), (None, 0.3)] {
            gradcheck(random(&[5, 3], 1), &[], |_, x| cross_entropy_with(x, &targets, &ce(w.clone(), eps, r)));
        }
        gradcheck(x.clone(), &[], |_, x| mse(x, &y, r));
        gradcheck(x.clone(), &[], |_, x| l1(x, &y, r));
        gradcheck(x.clone(), &[], |_, x| huber(x, &y, 0.25, r));
        gradcheck(x.clone(), &[], |_, x| smooth_l1(x, &y, 0.25, r));
        gradcheck(random(&[5, 3], 7), &[], |_, x| kl_div(x, &probs, false, r));
        gradcheck(random(&[5, 3], 8), &[], |_, x| kl_div(x, &probs.log()?, true, r));
        let cfg = BceWithLogitsConfig {
            pos_weight: Some(Tensor::new(&[0.5f64, 1.0, 3.0], &Device::Cpu).unwrap()),
            reduction: r,
            ..Default::default()
        };
        gradcheck(random(&[5, 3], 9), &[], |_, x| binary_cross_entropy_with_logits(x, &bin, &cfg));
    }
    gradcheck(random(&[5, 3], 10), &[], |_, x| {
        loss::cross_entropy(x, &Tensor::new(&[2u32, 0, 1, 1, 2], &Device::Cpu)?)
    });
}

#[test]
fn losses_reject_mismatched_shapes_and_targets() {
    let x = random(&[4, 3], 1);
    let err = mse(&x, &random(&[3, 4], 2), Reduction::Mean).unwrap_err().to_string();
    assert!(err.contains("mse") && err.contains("[4, 3]") && err.contains("[3, 4]"), "{err}");
    let err =
        cross_entropy_with(&x, &Tensor::new(&[0i64, 1, 3, 0], &Device::Cpu).unwrap(), &CrossEntropyConfig::default());
    assert!(err.unwrap_err().to_string().contains("class 3"));
    let bad_weight = ce(Some(Tensor::new(&[1f64, 2.], &Device::Cpu).unwrap()), 0.0, Reduction::Mean);
    let err = cross_entropy_with(&x, &Tensor::new(&[0i64, 1, 2, 0], &Device::Cpu).unwrap(), &bad_weight);
    assert!(err.unwrap_err().to_string().contains("[2]"));
}
