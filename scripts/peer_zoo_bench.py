#!/usr/bin/env python3
"""PyTorch side of `cargo xtask bench zoo`: training (forward, cross-entropy, backward, Adam) and
inference throughput of the zoo's 224 px models on random images, with the settings ember's
`ember bench` uses, for the table in docs/performance.md. Not part of the product; xtask runs it
when EMBER_TORCH_PYTHON names an interpreter with torch, torchvision and timm.

    python peer_zoo_bench.py MODEL [--threads 2] [--batch-size 16] [--warmup 2] [--batches 5] [--size 224]

MODEL: resnet18, resnet50 (torchvision) or efficientnet-lite0 (timm's `efficientnet_lite0`),
1000 classes, as ember's zoo builds them. Training: --warmup untimed steps, then --batches timed
steps over 4 batches in turn (images/s). Inference: eval mode under `torch.inference_mode()`, the
median of 3 timed passes over the 4 batches after one untimed pass, as `ember bench` reports its
own (ember_train::throughput). Prints one JSON line.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F


def build(name):
    if name in ("resnet18", "resnet50"):
        import torchvision
        return getattr(torchvision.models, name)(num_classes=1000)
    if name == "efficientnet-lite0":
        import timm
        return timm.create_model("efficientnet_lite0", num_classes=1000)
    raise SystemExit(f"unknown model {name}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--freeze-backbone", action="store_true",
                   help="train only the classifier head, batch norms on running statistics")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build(a.model)
    params = sum(t.numel() for t in model.parameters())
    trainable = model.parameters()
    if a.freeze_backbone:
        # The first stage of fine-tuning: the backbone frozen (no gradients, batch norms in
        # eval mode), only the head trains -- ember bench --freeze-backbone.
        head = model.fc if hasattr(model, "fc") else model.get_classifier()
        for t in model.parameters():
            t.requires_grad_(False)
        for t in head.parameters():
            t.requires_grad_(True)
        trainable = head.parameters()
    opt = torch.optim.Adam(trainable, 1e-3, eps=1e-7)
    xs = [torch.rand(a.batch_size, 3, a.size, a.size) for _ in range(4)]
    ys = [torch.randint(0, 1000, (a.batch_size,)) for _ in range(4)]

    model.train()
    if a.freeze_backbone:
        model.eval()

    def step(i):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xs[i % 4]), ys[i % 4]).backward()
        opt.step()

    for i in range(a.warmup):
        step(i)
    t = time.perf_counter()
    for i in range(a.batches):
        step(i)
    train = a.batches * a.batch_size / (time.perf_counter() - t)

    model.eval()
    rates = []
    with torch.inference_mode():
        for x in xs:
            model(x)
        for _ in range(3):
            t = time.perf_counter()
            for x in xs:
                model(x)
            rates.append(len(xs) * a.batch_size / (time.perf_counter() - t))
    infer = sorted(rates)[len(rates) // 2]
    print(json.dumps({
        "stack": f"PyTorch {torch.__version__}", "model": a.model, "params": params, "threads": a.threads,
        "batch_size": a.batch_size, "train_images_per_s": train, "infer_images_per_s": infer,
        "freeze_backbone": a.freeze_backbone,
    }))


main()
