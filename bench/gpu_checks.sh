#!/usr/bin/env bash
# The CUDA checks in one call on a machine with a GPU (how bench/README.md's CUDA figures are
# made): the GPU tests, bench_epoch.py (notebook, mlp_core eager, mlp_core captured),
# bench_time_to_accuracy.py (the default recipe, captured), the default recipe through the
# CLI (captured, then 2 epochs with --eager). About 3 minutes on an H100 (not yet measured
# with the captured step); each command has its own time limit, 8 minutes in all at worst.
#
# MNIST travels gzipped (about 11 MB) in the ignored folder .device/mnist/, made with
#   mkdir -p .device/mnist && for f in ../shared/mnist/MNIST/raw/*-ubyte; do
#     gzip -c "$f" > ".device/mnist/$(basename "$f").gz"; done
# then run with the device tool: carry [".device"], command "bash bench/gpu_checks.sh".
# Results go to $OUT (the device tool's folder that comes back), or /tmp/gpu-out.
set -u
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
PY=${PY:-python3}
T0=$(date +%s)
step() { echo "== $* ($(($(date +%s) - T0)) s in)"; }
nvidia-smi -L
$PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
if [ -z "${MNIST_ROOT:-}" ]; then
  mkdir -p /tmp/mnist/MNIST/raw
  for f in .device/mnist/*.gz; do gunzip -c "$f" > "/tmp/mnist/MNIST/raw/$(basename "$f" .gz)"; done
  export MNIST_ROOT=/tmp/mnist
fi
step "GPU tests"
timeout 150 $PY -m pytest -m gpu tests/test_gpu.py -q -p no:cacheprovider -rfEs --durations=5 \
  2>&1 | tail -40 | tee "$OUT/pytest_gpu.txt"
step "bench_epoch.py --device cuda"
timeout 100 $PY bench/bench_epoch.py --device cuda --epochs 3 --json 2>&1 | tee "$OUT/bench_cuda.txt"
step "bench_time_to_accuracy.py --device cuda"
timeout 90 $PY bench/bench_time_to_accuracy.py --device cuda --json 2>&1 | tee "$OUT/tta_cuda.txt"
step "python -m mlp_core train --device cuda (the default recipe)"
S=$(date +%s%N)
timeout 90 $PY -m mlp_core train --device cuda --json --out /tmp/cuda_default.pt 2>&1 \
  | tee "$OUT/train_cuda.json"
echo "wall $(( ($(date +%s%N) - S) / 1000000 )) ms" | tee -a "$OUT/train_cuda.json"
step "python -m mlp_core train --device cuda --eager --epochs 2"
timeout 45 $PY -m mlp_core train --device cuda --eager --epochs 2 --json --out /tmp/cuda_eager.pt \
  2>&1 | tee "$OUT/train_cuda_eager.json"
step "done"
