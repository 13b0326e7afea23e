#!/usr/bin/env bash
# ember on one CUDA GPU, end to end, in under 8 minutes. Its last line is `gpu-check: pass` or
# `gpu-check: FAIL (<what failed>)`, and the exit status says the same.
#
#   scripts/gpu-check.sh            # builds first where cargo is (cargo xtask gpu-build --bundle)
#   GPU_CHECK_SKIP_BUILD=1 scripts/gpu-check.sh   # a GPU machine without Rust: runs gpu-bundle/
#
# What it runs (docs/gpu.md says more):
#   1. gpu_check: every ember op and optimizer on the GPU against the CPU kernels (to 1e-4), and
#      ResNet-18's first training steps at 224 px against the same steps on the CPU;
#   2. `ember train --device cuda`: mnist-cnn for 2 epochs on the bundled digits (>= 98 % wanted);
#   3. `ember bench --device cuda`: ResNet-18 training and inference throughput, 224 px, batch 64;
#   4. the data-parallel driver (`ember train --devices 0`) with world size 1 on the GPU (the
#      in-process group);
#   5. the NCCL driver with world size 1: `ember train --device cuda` as rank 0 of a torchrun-style
#      group of one (WORLD_SIZE=1 ...), when the bundle's ember was built with `nccl`.
set -uo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
failed=()
out=$(mktemp -d)

if [ -z "${GPU_CHECK_SKIP_BUILD:-}" ] && command -v cargo >/dev/null; then
    cargo xtask gpu-build --bundle || { echo "gpu-check: FAIL (the CUDA build)"; exit 1; }
fi
if [ ! -f gpu-bundle/ember-cuda.tar.xz ]; then
    echo "gpu-check: FAIL (no gpu-bundle/ember-cuda.tar.xz: run cargo xtask gpu-build --bundle where cargo is)"
    exit 1
fi
bin="$out/bin"
mkdir -p "$bin" && tar -C "$bin" -xJf gpu-bundle/ember-cuda.tar.xz || { echo "gpu-check: FAIL (unpacking the bundle)"; exit 1; }

# The CUDA libraries the binaries link (cuBLAS, cuRAND, NVRTC, NCCL): the system's, else those of
# the Python wheels (site-packages/nvidia/{cu13,nccl}/lib: PyTorch's CUDA 13 builds bring NCCL),
# else the toolkit gpu-build installed.
for dir in $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, d, "lib") for p in nvidia.__path__ for d in ("cu13", "nccl")))' 2>/dev/null) \
    target/cuda-toolkit/nvidia/cu13/lib target/cuda-toolkit/nvidia/nccl/lib; do
    [ -d "$dir" ] && LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi: not available"

echo "== 1. ops, optimizers and ResNet-18 steps against the CPU"
timeout 240 "$bin/gpu_check" --device cuda | tee "$out/gpu_check.log"
tail -n 1 "$out/gpu_check.log" | grep -q '^gpu_check: pass' || failed+=("gpu_check")

echo "== 2. mnist-cnn, 2 epochs on the bundled digits, on CUDA"
if timeout 150 "$bin/ember" train --device cuda --epochs 2 --batch-size 8 --lr 0.003 --out "$out/mnist" --json \
    | tee "$out/train.log"; then
    accuracy=$(tail -n 1 "$out/train.log" | python3 -c 'import json, sys; print(json.load(sys.stdin)["accuracy"])')
    echo "mnist-cnn test accuracy on CUDA: $accuracy"
    python3 -c "import sys; sys.exit(0 if float('$accuracy') >= 0.98 else 1)" || failed+=("mnist-cnn accuracy $accuracy < 0.98")
else
    failed+=("ember train --device cuda")
fi

echo "== 3. ResNet-18 throughput at 224 px, batch 64, on CUDA"
if timeout 150 "$bin/ember" bench --model resnet18 --device cuda --batch-size 64 --warmup 3 --batches 20 --json \
    | tee "$out/bench.log"; then
    tail -n 1 "$out/bench.log" | python3 -c 'import json, sys; r = json.load(sys.stdin); print(f"resnet18 on CUDA: train {r[\"train_images_per_s\"]:.1f} images/s, infer {r[\"infer_images_per_s\"]:.1f} images/s")'
else
    failed+=("ember bench --device cuda")
fi

echo "== 4. the data-parallel driver, world size 1, on CUDA"
if timeout 120 "$bin/ember" train --devices 0 --epochs 1 --train-limit 2048 --out "$out/parallel" --json \
    >"$out/parallel.log" 2>&1; then
    tail -n 2 "$out/parallel.log" | head -n 1
else
    tail -n 3 "$out/parallel.log"
    failed+=("ember train --devices 0")
fi

echo "== 5. the NCCL driver with world size 1, on CUDA"
# The DT_NEEDED entry survives stripping: an ember built with `nccl` names libnccl.
if grep -q 'libnccl\.so' "$bin/ember"; then
    if WORLD_SIZE=1 RANK=0 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 timeout 120 "$bin/ember" train \
        --device cuda --epochs 1 --train-limit 2048 --out "$out/nccl" --json >"$out/nccl.log" 2>&1 \
        && grep -q 'data parallel on 1 process (nccl' "$out/nccl.log"; then
        tail -n 2 "$out/nccl.log" | head -n 1
    else
        tail -n 3 "$out/nccl.log"
        failed+=("ember train with WORLD_SIZE=1 (NCCL)")
    fi
else
    echo "skipped: the bundle's ember was built without the nccl feature"
fi

echo "gpu-check took $(( $(date +%s) - started )) s"
if [ ${#failed[@]} -eq 0 ]; then
    echo "gpu-check: pass"
else
    (IFS=';'; echo "gpu-check: FAIL (${failed[*]})")
    exit 1
fi
