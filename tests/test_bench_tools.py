"""The benchmark's CPU reader for an out-of-process service (``--server-workers``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from benchmarks.bench_checks import process_tree_cpu_s

BURN = (
    "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"
    "print('done', flush=True)\ntime.sleep(30)"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_process_tree_cpu_counts_live_children() -> None:
    before = process_tree_cpu_s(os.getpid())
    with subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "done"
            child_alone = process_tree_cpu_s(child.pid)
            tree = process_tree_cpu_s(os.getpid())
        finally:
            child.kill()
            child.wait()
    assert child_alone >= 0.35  # the child's own 0.4 s of CPU (clock ticks are 10 ms)
    assert tree - before >= child_alone - 0.02  # the parent's tree includes the live child
    time.sleep(0.1)
    assert process_tree_cpu_s(child.pid) == 0.0  # gone: nothing left to count
