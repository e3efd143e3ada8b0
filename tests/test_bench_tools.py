"""The benchmark's CPU readers (an out-of-process service, the machine's other jobs) and its lean HTTP client."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from benchmarks.ab_checks import compare, sign_test_p
from benchmarks.bench_checks import process_tree_cpu_s, process_tree_usage
from service.config import Settings

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


FAULT = (
    "import mmap\nbuf = mmap.mmap(-1, 64 * 1024 * 1024)\nfor i in range(0, len(buf), 4096): buf[i] = 1\n"
    "print('done', flush=True)\nimport time\ntime.sleep(30)"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_process_tree_usage_counts_a_childs_page_faults() -> None:
    """The benchmark's kernel-side columns: a child that touches 64 MiB of fresh pages shows >= 16k minor faults."""
    with subprocess.Popen([sys.executable, "-c", FAULT], stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "done"
            usage = process_tree_usage(child.pid)
        finally:
            child.kill()
            child.wait()
    assert usage.minor_faults >= 64 * 1024 * 1024 // 4096
    assert usage.system_s >= 0.0
    assert usage.cpu_s == pytest.approx(usage.user_s + usage.system_s)
    assert (usage - usage).minor_faults == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")
def test_machine_busy_cpu_sees_another_process() -> None:
    """The benchmark's 'other' column: CPU burnt by a process outside the benchmark shows in the machine's total."""
    from benchmarks.bench_checks import machine_busy_cpu_s

    before = machine_busy_cpu_s()
    with subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "done"
            after = machine_busy_cpu_s()
        finally:
            child.kill()
            child.wait()
    assert before is not None
    assert after is not None
    assert after - before >= 0.35


def test_raw_client_sends_prepared_checks_over_one_kept_alive_connection(settings: Settings) -> None:
    """The lean benchmark client against the real app: two prepared checks on one connection, then a refused one."""
    import asyncio

    from benchmarks.raw_http import RawConnection, encode_request
    from service.api import create_app
    from service.domain import Scope
    from tests.fakes import FakeFaceDetector, FakeTextDetector
    from tests.live import serve_in_thread

    app = create_app(settings, detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
    with serve_in_thread(app) as base:
        token = app.state.store.create_api_key("bench", [Scope.CHECK])
        files = [("text", ("a.txt", b"one two three four five six seven eight nine ten", "text/plain"))]
        good = encode_request(base, "/v1/checks", headers={"Authorization": f"Bearer {token}"}, files=files,
                              data={"byline": "Bench 1"})
        bad = encode_request(base, "/v1/checks", headers={"Authorization": "Bearer nope"}, files=files)

        async def run() -> tuple[list[int], list[str], set[int]]:
            connection = RawConnection(base)
            statuses, bylines, local_ports = [], [], set()
            try:
                for request in (good, good, bad):
                    response = await connection.send(request)
                    statuses.append(response.status_code)
                    bylines.append(str(response.json().get("byline")))
                    assert connection._writer is not None
                    local_ports.add(connection._writer.get_extra_info("sockname")[1])
            finally:
                await connection.close()
            return statuses, bylines, local_ports

        statuses, bylines, local_ports = asyncio.run(run())
    assert statuses == [200, 200, 401]
    assert bylines[:2] == ["Bench 1", "Bench 1"]
    assert len(local_ports) == 1  # one kept-alive connection carried all three


def test_raw_client_gives_up_on_a_silent_server() -> None:
    import asyncio

    from benchmarks.raw_http import RawConnection

    async def run() -> None:
        hung_up = asyncio.Event()

        async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # until the client closes
            writer.close()
            await writer.wait_closed()
            hung_up.set()

        server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        connection = RawConnection(f"http://127.0.0.1:{port}", timeout_s=0.2)
        async with server:
            with pytest.raises(TimeoutError):
                await connection.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            assert connection._writer is None  # closed, so the next send reconnects
            await asyncio.wait_for(hung_up.wait(), timeout=5)  # the server saw the client hang up

    asyncio.run(run())


def test_ab_summary_counts_rounds_won_and_their_sign_test() -> None:
    bursts = []
    for r in range(8):
        a_p50, b_p50 = 400.0, (380.0 if r < 7 else 420.0)  # B faster in 7 of 8 rounds
        for name, p50 in (("A", a_p50), ("B", b_p50)):
            bursts.append({"round": r, "config": name, "checks_per_s": 20.0, "p50_ms": p50, "p99_ms": 600.0,
                           "service_cpu_s_per_check": 0.08, "service_system_cpu_s_per_check": 0.003,
                           "service_minor_faults_per_check": 40.0})
    summary = compare(bursts, 8)
    assert summary["b_better_in_rounds"]["p50_ms"] == 7
    assert summary["b_better_in_rounds"]["checks_per_s"] == 0  # ties are not wins
    assert summary["A"]["p50_ms"] == 400.0
    assert summary["B"]["p50_ms"] == 380.0
    assert summary["sign_test_p"]["p50_ms"] == pytest.approx(18 / 256)
    assert summary["sign_test_p"]["checks_per_s"] == 1.0  # all rounds tied
    assert sign_test_p(8, 8) == pytest.approx(2 / 256)
    assert sign_test_p(4, 8) == 1.0
