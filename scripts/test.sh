#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite: ruff, mypy (strict on service/ and detectors/), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
# Browser tests use Debian's chromium (Playwright never downloads one).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; })
  else
    echo "chromium missing: install Debian's chromium package (sudo apt-get install chromium)" >&2
    exit 1
  fi
fi
# The Redis queue test runs a real redis-server (Debian package), started by the test on a free port.
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get install -y -q redis-server >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null; })
  else
    echo "redis-server missing: install Debian's redis-server package (sudo apt-get install redis-server)" >&2
    exit 1
  fi
fi
# The deploy tests run a real PostgreSQL (started by the test on a free port) and check docker-compose.yml
# with Debian's docker-compose 1.29 (no container engine needed).
missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; })
  else
    echo "missing: install Debian's ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
mkdir -p test-output
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
