#!/usr/bin/env bash
# Set up (first run only) and start the service on its embedded defaults:
# SQLite under var/, in-process queue, CPU, http://127.0.0.1:8000
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/bylinecheck serve "$@"
