//! Recurrent layers forward + backward over a sequence, against candle-nn's LSTM.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::rnn::RNN;
use candle_nn::Module;
use criterion::{criterion_group, criterion_main, Criterion};
use ember_layers::{Gru, Lstm, ParamStore, RecurrentConfig};

fn bench_recurrent(c: &mut Criterion) {
    let (seq, batch, input, hidden) = (32, 16, 32, 64);
    let x = Var::from_tensor(&Tensor::randn(0f32, 1., (batch, seq, input), &Device::Cpu).unwrap()).unwrap();
    let store = ParamStore::new(0, &Device::Cpu);
    let vb = store.var_builder(DType::F32);
    let cfg = RecurrentConfig { batch_first: true, ..RecurrentConfig::new(input, hidden) };
    let lstm = Lstm::new(&cfg, vb.pp("lstm")).unwrap();
    let gru = Gru::new(&cfg, vb.pp("gru")).unwrap();
    let theirs = candle_nn::lstm(input, hidden, candle_nn::LSTMConfig::default(), vb.pp("candle")).unwrap();
    let mut group = c.benchmark_group("lstm_fwd_bwd_b16_seq32_in32_h64");
    group.bench_function("ember", |b| {
        b.iter(|| lstm.forward(x.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap())
    });
    group.bench_function("candle", |b| {
        b.iter(|| {
            let states = theirs.seq(x.as_tensor()).unwrap();
            theirs.states_to_tensor(&states).unwrap().sum_all().unwrap().backward().unwrap()
        })
    });
    group.bench_function("ember_gru", |b| {
        b.iter(|| gru.forward(x.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_recurrent);
criterion_main!(benches);
