#!/usr/bin/env bash
# The CUDA checks, run once on a machine with a GPU (how bench/README.md's CUDA figures were made).
# Expects MNIST gzipped in .device/mnist/ (or MNIST_ROOT already set) and writes results to $OUT.
set -u
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
PY=${PY:-python3}
nvidia-smi -L
$PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
if [ -z "${MNIST_ROOT:-}" ]; then
  mkdir -p /tmp/mnist/MNIST/raw
  for f in .device/mnist/*.gz; do gunzip -c "$f" > "/tmp/mnist/MNIST/raw/$(basename "$f" .gz)"; done
  export MNIST_ROOT=/tmp/mnist
fi
$PY -m pytest -m gpu tests/test_gpu.py -q -p no:cacheprovider 2>&1 | tail -15 | tee "$OUT/pytest_gpu.txt"
$PY bench/bench_epoch.py --device cuda --epochs 3 --json 2>&1 | tee "$OUT/bench_cuda.txt"
$PY -m mlp_core train --device cuda --json --out /tmp/cuda_default.pt 2>&1 | tee "$OUT/train_cuda.json"
$PY bench/bench_epoch.py --device cpu --epochs 2 --json 2>&1 | tee "$OUT/bench_cpu16.txt"
