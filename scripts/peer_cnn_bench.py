#!/usr/bin/env python3
"""The classic CNN on Fashion-MNIST in PyTorch or TensorFlow-Keras: the workload of ember's
end-to-end benchmark (crates/ember-train/benches/classic_cnn_end_to_end.rs), for the table in
docs/performance.md. Not part of the product; `cargo xtask bench` runs it when the interpreters
are named in EMBER_TORCH_PYTHON / EMBER_TF_PYTHON.

Network: Conv2D(32,3x3)-ReLU-MaxPool2-Conv2D(64,3x3)-ReLU-MaxPool2-Flatten-Dense(128)-ReLU-
Dense(10), softmax cross-entropy, Adam(lr 1e-3, eps 1e-7), batch 64, f32.

    python peer_cnn_bench.py torch|tf DATA_DIR [--threads 2] [--batches 300] [--epoch [--epoch-runs N]]

Training: 20 warm-up batches, then --batches timed batches (images/s). Inference: the 10,000
test images at batch 1,000, median of 3 passes after one untimed pass. With --epoch, --epoch-runs
fresh models (default 1) each train one full epoch, run r in the shuffled order of seed 1 + r;
the mean test accuracy is reported (and each run's). Prints one JSON line.
"""
import argparse
import gzip
import json
import os
import struct
import time

import numpy as np


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data_dir, split):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz")).astype(np.float32) / 255.0
    y = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz")).astype(np.int64)
    return x[:, None, :, :], y  # NCHW


def batches(x, y, size, seed=None):
    order = np.arange(len(x)) if seed is None else np.random.default_rng(seed).permutation(len(x))
    for i in range(0, len(x) - size + 1, size):
        idx = order[i:i + size]
        yield x[idx], y[idx]


class Torch:
    def __init__(self, threads):
        import torch
        torch.set_num_threads(threads)
        self.torch = torch
        nn = torch.nn
        self.version = f"PyTorch {torch.__version__}"

        def make():
            model = nn.Sequential(
                nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10))
            return model, torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
        self.make = make

    def trainer(self):
        model, opt = self.make()
        loss_fn = self.torch.nn.CrossEntropyLoss()

        def step(x, y):
            x, y = self.torch.from_numpy(x), self.torch.from_numpy(y)
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()

        def infer(x):
            with self.torch.no_grad():
                return model(self.torch.from_numpy(x)).numpy()
        return step, infer


class Keras:
    def __init__(self, threads):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        self.tf = tf
        import keras
        self.version = f"TensorFlow {tf.__version__} / Keras {keras.__version__}"

    def trainer(self):
        tf = self.tf
        k = tf.keras
        model = k.Sequential([
            k.Input((28, 28, 1)),
            k.layers.Conv2D(32, 3, activation="relu"), k.layers.MaxPooling2D(2),
            k.layers.Conv2D(64, 3, activation="relu"), k.layers.MaxPooling2D(2),
            k.layers.Flatten(), k.layers.Dense(128, activation="relu"), k.layers.Dense(10)])
        opt = k.optimizers.Adam(learning_rate=1e-3, epsilon=1e-7)
        loss_fn = k.losses.SparseCategoricalCrossentropy(from_logits=True)

        @tf.function(jit_compile=False)
        def train_step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))

        @tf.function
        def predict(x):
            return model(x, training=False)

        def step(x, y):
            train_step(tf.constant(x.transpose(0, 2, 3, 1)), tf.constant(y))

        def infer(x):
            return predict(tf.constant(x.transpose(0, 2, 3, 1))).numpy()
        return step, infer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("framework", choices=["torch", "tf"])
    ap.add_argument("data_dir")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--epoch", action="store_true")
    ap.add_argument("--epoch-runs", type=int, default=1)
    args = ap.parse_args()
    stack = Torch(args.threads) if args.framework == "torch" else Keras(args.threads)
    xtr, ytr = load(args.data_dir, "train")
    xte, yte = load(args.data_dir, "test")
    train = list(batches(xtr, ytr, 64, seed=0))
    test = list(batches(xte, yte, 1000))

    step, infer = stack.trainer()
    for i in range(20):
        step(*train[i % len(train)])
    start = time.perf_counter()
    for i in range(args.batches):
        step(*train[(20 + i) % len(train)])
    train_ips = args.batches * 64 / (time.perf_counter() - start)
    for x, _ in test:
        infer(x)
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        for x, _ in test:
            infer(x)
        rates.append(len(xte) / (time.perf_counter() - start))
    result = {"stack": stack.version, "threads": args.threads, "train_images_per_s": train_ips,
              "infer_images_per_s": sorted(rates)[1]}
    if args.epoch:
        accuracies = []
        for run in range(args.epoch_runs):
            step, infer = stack.trainer()
            start = time.perf_counter()
            for x, y in batches(xtr, ytr, 64, seed=1 + run):
                step(x, y)
            right = sum(int((infer(x).argmax(1) == y).sum()) for x, y in test)
            result["epoch_seconds"] = time.perf_counter() - start
            accuracies.append(right / len(yte))
        result["epoch_test_accuracy"] = sum(accuracies) / len(accuracies)
        result["epoch_test_accuracies"] = accuracies
    print(json.dumps(result))


if __name__ == "__main__":
    main()
