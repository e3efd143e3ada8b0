"""A short load run (``benchmarks/load_test.py``): 16 clients for 20 s against a real uvicorn on loopback.

No errors, a bounded p99, and a flat memory line. ``BYLINECHECK_LONG_TESTS=1`` runs the full 10 minutes.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from benchmarks.load_test import api_key, run_load, server_env
from tests.live import start_child

LONG = os.environ.get("BYLINECHECK_LONG_TESTS") == "1"


def test_sixteen_clients_hold_without_errors_or_memory_growth(tmp_path: Path) -> None:
    env = {**server_env(tmp_path, "fake"), "BYLINECHECK_ENERGY_BACKEND": "cpu-time"}
    token = api_key(env)
    server = start_child(env, tmp_path / "server.log")
    try:
        result = asyncio.run(run_load(server.url, token, duration_s=600 if LONG else 20, clients=16,
                                      server_pid=server.process.pid))
    finally:
        server.stop()
    summary = result.summary()
    print({k: v for k, v in summary.items() if k != "rss_series"})
    assert summary["requests"] > 100
    assert summary["errors"] == 0, summary["statuses"]
    assert summary["p99_s"] < 10.0
    assert summary["rss_growth_mb"] < 40, summary["rss_series"]
