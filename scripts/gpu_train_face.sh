#!/usr/bin/env bash
# One-off GPU training of the face CNN v2 from the carried crop set (.devdata/face_gpu, built by
# `python -m detectors.face.gpu_data`); see detectors/face/GPU_RUN.md. Needs only python3 with numpy,
# OpenCV, torch, onnx and onnxruntime (no bylinecheck install). Usage:
#   bash scripts/gpu_train_face.sh OUT_DIR [extra gpu_train.py args, e.g. --device cpu --epochs 1 --limit 64]
# Writes to OUT_DIR: face_cnn_v2.onnx, face_cnn_v2.pt, train_log.json, val_logits.csv, run.log.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: gpu_train_face.sh OUT_DIR [args]}"
shift
mkdir -p "$out"
{
  date -u +"%Y-%m-%dT%H:%M:%SZ start"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  du -sm .devdata/face_gpu
} 2>&1 | tee "$out/run.log"
# The script stops training on its own budget (--budget-s, default 280 s) and exports; timeout is the backstop.
timeout -k 10 "${TIMEOUT_S:-355}" "${PYTHON:-python3}" -u detectors/face/gpu_train.py --data .devdata/face_gpu --out "$out" "$@" 2>&1 |
  tee -a "$out/run.log"
