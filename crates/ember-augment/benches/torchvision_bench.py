"""The pipelines of benches/pipelines.rs in torchvision v2, on uint8 tensors, one thread.

    python crates/ember-augment/benches/torchvision_bench.py

Prints images/s per pipeline. Needs torch and torchvision (skips cleanly without them).
"""

import sys
import time

try:
    import torch
    from torchvision.transforms import v2
except ImportError:
    print("torchvision not installed: nothing to compare")
    sys.exit(0)

torch.set_num_threads(1)


def digit():
    yy, xx = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
    return ((xx * 7 + yy * 13) % 256).to(torch.uint8).unsqueeze(0)


def photo():
    yy, xx = torch.meshgrid(torch.arange(256), torch.arange(256), indexing="ij")
    return torch.stack([(xx + yy) % 256, (xx * 3) % 256, (yy * 5) % 256]).to(torch.uint8)


def rate(pipeline, img, seconds=3.0):
    for _ in range(20):
        pipeline(img)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            pipeline(img)
        n += 50
    return n / (time.perf_counter() - start)


mnist = v2.Compose([
    v2.RandomCrop(28, padding=4),
    v2.RandomHorizontalFlip(),
    v2.ToDtype(torch.float32, scale=True),
    v2.Normalize([0.1307], [0.3081]),
])
imagenet = v2.Compose([
    v2.RandomResizedCrop(224, antialias=True),
    v2.RandomHorizontalFlip(),
    v2.ColorJitter(0.4, 0.4, 0.4, 0.1),
    v2.ToDtype(torch.float32, scale=True),
    v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
])
print(f"torch {torch.__version__}, one thread")
print(f"mnist_28x28_padcrop_flip_normalize       {rate(mnist, digit()):10.0f} images/s")
print(f"imagenet_224_rrc_flip_jitter_normalize   {rate(imagenet, photo()):10.0f} images/s")
