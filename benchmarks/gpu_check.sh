#!/usr/bin/env bash
# GPU check (under 5 minutes on a CUDA machine): forward passes on CUDA match the CPU, NVML energy per
# check at batch sizes 1-256, and the NVML counter's update period. Prepare inputs first on any CPU:
#   .venv/bin/python -m benchmarks.gpu_inputs
# then, on the GPU machine (python with torch, onnx, onnxruntime, nvidia-ml-py, numpy):
#   bash benchmarks/gpu_check.sh [--out OUT.json] [--weights DIR] [--inputs PKL]
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,driver_version,power.draw,power.limit --format=csv
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" timeout 290 python3 -m benchmarks.gpu_check "$@"
