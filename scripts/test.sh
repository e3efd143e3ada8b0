#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite: lint, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
mkdir -p test-output
.venv/bin/ruff check .
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
