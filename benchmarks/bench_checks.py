"""Service benchmark: p50/p99 latency, checks/s and energy per check at concurrency 1, 8 and 32.

Starts the real service (uvicorn, loopback only, temporary SQLite) with the shipped detectors and
sends 800-word articles, each with one 1024x1024 JPEG headshot, from ../shared/datasets. Every request
carries a *different* headshot (cold: no cache can hit); ``--warm`` repeats one headshot on purpose (a
newsroom's byline photo sent with every article) and labels the run ``warm``. Prints a table and writes
JSON (``--out``) with the load average before and after each level. A benchmark, not a test: it asserts
nothing. Rate limiting is off (it would cap the run at 10 checks/s).

By default the service runs in this process (one uvicorn worker, the embedded defaults); CPU seconds then
count the whole process, and the service's share is the process minus the client thread. With
``--server-workers N`` the service is ``bylinecheck serve --workers N`` in its own processes (as deployed:
docker-compose runs two), its CPU read from ``/proc`` for the whole process tree (Linux only), and the
client's from this process. The client (``--client raw``, the default) encodes every request before the clock starts
and keeps one connection per simulated client (:mod:`benchmarks.raw_http`; under 1 ms of CPU per check, against ~5 ms
for ``--client httpx``), since it shares the machine's cores with the service. Each level also reports the share of
the machine's CPU that other jobs used (``foreign_cpu_share``, printed as ``other``) and each simulated client's mean
latency (keep-alive ties a client to one worker process).

    .venv/bin/python -m benchmarks.bench_checks --requests 64 --out benchmarks/results/checks.json
    .venv/bin/python -m benchmarks.bench_checks --server-workers 2 --requests 64
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from PIL import Image

from benchmarks.raw_http import RawConnection, RawResponse, encode_request
from benchmarks.workload import articles, distinct_headshots
from service.api import create_app
from service.config import Settings
from service.domain import Scope
from service.store import Store

BENCH_SECRET = "bench-secret-not-for-production-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ticks_per_s() -> float:
    return float(os.sysconf("SC_CLK_TCK"))


def machine_busy_cpu_s() -> float | None:
    """CPU seconds all cores spent busy since boot (``/proc/stat``: everything but idle and iowait), or None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / _ticks_per_s()


@dataclass(frozen=True)
class TreeUsage:
    """CPU seconds (user, system) and minor page faults of a process tree, summed over its live processes."""

    user_s: float = 0.0
    system_s: float = 0.0
    minor_faults: int = 0

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.system_s

    def __sub__(self, other: TreeUsage) -> TreeUsage:
        return TreeUsage(self.user_s - other.user_s, self.system_s - other.system_s,
                         self.minor_faults - other.minor_faults)


def process_tree_usage(root: int) -> TreeUsage:
    """:class:`TreeUsage` of ``root`` and all its live descendants, from ``/proc`` (Linux)."""
    parents: dict[int, int] = {}
    usage: dict[int, TreeUsage] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        usage[pid] = TreeUsage(int(fields[11]) / _ticks_per_s(), int(fields[12]) / _ticks_per_s(), int(fields[7]))
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    mine = [usage[pid] for pid in tree if pid in usage]
    return TreeUsage(sum(u.user_s for u in mine), sum(u.system_s for u in mine), sum(u.minor_faults for u in mine))


def process_tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of ``root`` and all its live descendants, from ``/proc`` (Linux)."""
    return process_tree_usage(root).cpu_s


class ExternalServer:
    """``bylinecheck serve --workers N`` on a temporary SQLite database, in its own process tree."""

    def __init__(self, workers: int, tmp: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        database_url = f"sqlite:///{tmp / 'bench.sqlite3'}"
        store = Store(database_url, BENCH_SECRET)
        try:
            store.migrate()
            self.token = store.create_api_key("bench", [Scope.CHECK])
        finally:
            store.close()
        env = {**os.environ, "BYLINECHECK_DATABASE_URL": database_url, "BYLINECHECK_SECRET_KEY": BENCH_SECRET,
               "BYLINECHECK_BOOTSTRAP_API_KEY": "false", "BYLINECHECK_MAX_QUEUE": "1024",
               "BYLINECHECK_RATE_LIMIT_PER_MINUTE": "0", **(env or {})}
        command = [str(Path(sys.executable).with_name("bylinecheck")), "serve", "--workers", str(workers),
                   "--host", "127.0.0.1", "--port", str(self.port)]
        self.log = (tmp / "server.log").open("w")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 180.0) -> None:
        """Until /readyz answers 200 and the tree's CPU use settles (every worker has loaded its models)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited with {self.process.returncode}; see {self.log.name}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError(f"the service was not ready within {timeout_s:.0f} s; see {self.log.name}")
        before = self.cpu_s()
        while time.monotonic() < deadline:
            time.sleep(1.0)
            now = self.cpu_s()
            if now - before < 0.05:
                return
            before = now
        raise RuntimeError(f"the service kept loading for {timeout_s:.0f} s; see {self.log.name}")

    def cpu_s(self) -> float:
        return process_tree_cpu_s(self.process.pid)

    def usage(self) -> TreeUsage:
        return process_tree_usage(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def start_server(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, str]:
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    token = app.state.store.create_api_key("bench", [Scope.CHECK])
    return server, thread, token


def _check_form(i: int, texts: list[str], images: list[bytes]) -> tuple[list[Any], dict[str, str]]:
    files = [("text", ("a.txt", texts[i % len(texts)].encode(), "text/plain")),
             ("headshots", ("h.jpg", images[i % len(images)], "image/jpeg"))]
    return files, {"byline": f"Bench {i}"}


async def run_level(base: str, token: str, concurrency: int, total: int, texts: list[str],
                    images: list[bytes], server: ExternalServer | None = None, client: str = "raw") -> dict[str, Any]:
    """One level; request ``i`` sends ``images[i % len(images)]``. With ``server`` the service's CPU is its
    process tree's; otherwise this process's minus the client thread's. ``client``: ``raw`` sends requests
    encoded before the clock starts over one keep-alive connection per simulated client
    (:mod:`benchmarks.raw_http`); ``httpx`` builds and sends each through ``httpx.AsyncClient`` (rounds 1-7)."""
    latencies: list[float] = []
    per_client: dict[int, list[float]] = {}
    joules: list[float] = []
    preprocess_j: list[float] = []
    versions: dict[str, str] = {}
    text_abstained: list[bool] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    auth = {"Authorization": f"Bearer {token}"}
    prepared = [encode_request(base, "/v1/checks", headers=auth, files=form[0], data=form[1])
                for form in (_check_form(i, texts, images) for i in range(total))] if client == "raw" else []

    async def send(http: httpx.AsyncClient | RawConnection, i: int) -> httpx.Response | RawResponse:
        if isinstance(http, RawConnection):
            return await http.send(prepared[i])
        files, data = _check_form(i, texts, images)
        return await http.post("/v1/checks", files=files, data=data)

    async def worker(http: httpx.AsyncClient | RawConnection) -> None:
        nonlocal errors
        mine = per_client.setdefault(len(per_client), [])
        while not queue.empty():
            i = queue.get_nowait()
            started = time.perf_counter()
            resp = await send(http, i)
            latencies.append(time.perf_counter() - started)
            mine.append(latencies[-1])
            if resp.status_code != 200:
                errors += 1
                continue
            report = resp.json()
            versions.update(report.get("detectors") or {})
            text_abstained.append(report["text"] is not None and report["text"]["verdict"] == "abstain")
            energy = report["energy"]
            if energy["joules"] is not None:
                joules.append(energy["joules"])
                preprocess_j.append(sum(p.get("preprocess_j") or 0.0 for p in energy.get("parts") or []))

    load_before = os.getloadavg()
    client0 = time.thread_time()  # the client runs on this thread's event loop; the service on its own threads
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    server0 = server.usage() if server else TreeUsage()
    machine0 = machine_busy_cpu_s()
    wall0 = time.perf_counter()
    if client == "raw":
        connections = [RawConnection(base) for _ in range(concurrency)]
        try:
            await asyncio.gather(*(worker(connection) for connection in connections))
        finally:
            await asyncio.gather(*(connection.close() for connection in connections))
    else:
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=120) as http:
            await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    wall = time.perf_counter() - wall0
    machine1 = machine_busy_cpu_s()
    server_usage = server.usage() - server0 if server else TreeUsage()
    server_cpu_s = server_usage.cpu_s
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu_s = time.thread_time() - client0
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime) + server_cpu_s
    # CPU that neither the service nor this process used during the level (another job on the machine): a run
    # with a large share measured a slower machine, not the service
    foreign = None if machine0 is None or machine1 is None \
        else max(0.0, (machine1 - machine0) - cpu_s) / (wall * (os.cpu_count() or 1))
    ordered = sorted(latencies)
    return {
        "concurrency": concurrency,
        "client": client,
        "requests": total,
        "errors": errors,
        "checks_per_s": total / wall,
        "checks_per_cpu_s": total / cpu_s if cpu_s else None,
        "cpu_s_per_check": cpu_s / total,
        "service_cpu_s_per_check": (server_cpu_s if server else cpu_s - client_cpu_s) / total,
        "client_cpu_s_per_check": client_cpu_s / total,
        # kernel CPU and minor page faults of the service's process tree (None when it runs in this process)
        "service_system_cpu_s_per_check": server_usage.system_s / total if server else None,
        "service_minor_faults_per_check": server_usage.minor_faults / total if server else None,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "mean_ms": 1000 * statistics.fmean(ordered),
        # each simulated client's mean latency: with keep-alive, a client's requests all go to the worker process
        # that accepted its connection, so an uneven split of connections shows here
        "client_mean_ms": sorted(1000 * statistics.fmean(v) for v in per_client.values() if v),
        "energy_j_per_check_mean": statistics.fmean(joules) if joules else None,
        "preprocess_j_per_check_mean": statistics.fmean(preprocess_j) if preprocess_j else None,
        "detectors": versions,
        "text_abstained_share": statistics.fmean(text_abstained) if text_abstained else None,
        "foreign_cpu_share": foreign,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }


def peer_comparison(texts: list[str], images: list[bytes], settings: Settings,
                    results: list[dict[str, Any]]) -> dict[str, Any]:
    import numpy as np

    from benchmarks.peer_baseline import run_peer_baseline

    pixels = [np.asarray(Image.open(io.BytesIO(images[i % len(images)])).convert("RGB")) for i in range(len(texts))]
    peer = run_peer_baseline(texts, pixels, settings.cpu_core_power_w)
    best = max(r["checks_per_cpu_s"] or 0.0 for r in results)
    peer["ratio_checks_per_cpu_s"] = best / peer["checks_per_cpu_s"]
    return peer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=64, help="requests per concurrency level")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--peer", action="store_true", help="also run the peer baseline (needs the train extra)")
    parser.add_argument("--peer-items", type=int, default=16)
    parser.add_argument("--warm", action="store_true", help="repeat one headshot (labelled warm; not the headline)")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw",
                        help="raw: requests encoded before the clock, keep-alive sockets (default); httpx: rounds 1-7's")
    parser.add_argument("--server-workers", type=int, default=0,
                        help="run `bylinecheck serve --workers N` in its own processes (0: in this process)")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bylinecheck-bench-"))
    settings = Settings(database_url=f"sqlite:///{tmp / 'bench.sqlite3'}", port=free_port(), bootstrap_api_key=False,
                        max_queue=1024, rate_limit_per_minute=0)
    texts = articles(32)
    warmups = 2 * max(1, args.server_workers)
    # distinct headshots across all levels (+ the warm-up requests), or one repeated headshot when warm
    images = distinct_headshots(1 if args.warm else args.requests * len(args.levels) + warmups)
    external = ExternalServer(args.server_workers, tmp) if args.server_workers > 0 else None
    if external is None:
        server, thread, token = start_server(settings)
        base = f"http://127.0.0.1:{settings.port}"
    else:
        token, base = external.token, external.base
    results = []
    try:
        asyncio.run(run_level(base, token, warmups, warmups, texts, images[-warmups:], external, args.client))  # warm-up
        for n, level in enumerate(args.levels):
            level_images = images if args.warm else images[n * args.requests:(n + 1) * args.requests]
            results.append(asyncio.run(run_level(base, token, level, args.requests, texts, level_images, external,
                                                 args.client)))
    finally:
        if external is None:
            server.should_exit = True
            thread.join(timeout=10)
        else:
            external.stop()
    mode = "warm" if args.warm else "cold"
    served = f"{args.server_workers} worker process(es)" if external else "in this process"
    print(f"headshots: {mode} ({'one headshot repeated' if args.warm else 'a different headshot per request'}); "
          f"service: {served}")
    print("CPU-s: whole process per check (client included); svc: the service's threads only; "
          "J/check: the reports' energy; svc J: svc CPU-s x cpu_core_power_w; other: share of the machine's CPU used "
          "by other jobs during the level (above ~0.05 the run measured a busy machine)")
    print(f"{'conc':>5} {'req':>5} {'err':>4} {'checks/s':>9} {'chk/CPU-s':>9} {'CPU-s':>6} {'svc':>6} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'J/check':>8} {'svc J':>6} {'load':>5} {'other':>5}")
    for r in results:
        energy = r["energy_j_per_check_mean"]
        r["service_j_per_check_estimated"] = r["service_cpu_s_per_check"] * settings.cpu_core_power_w
        print(f"{r['concurrency']:>5} {r['requests']:>5} {r['errors']:>4} {r['checks_per_s']:>9.2f} "
              f"{(r['checks_per_cpu_s'] or 0):>9.2f} {r['cpu_s_per_check']:>6.3f} {r['service_cpu_s_per_check']:>6.3f} "
              f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {(energy if energy is not None else float('nan')):>8.3f} "
              f"{r['service_j_per_check_estimated']:>6.3f} {r['load_average_before'][0]:>5.2f} "
              f"{(r['foreign_cpu_share'] if r['foreign_cpu_share'] is not None else float('nan')):>5.2f}")
    payload: dict[str, Any] = {"cpu_count": os.cpu_count(), "results": results, "headshots": mode, "client": args.client,
                               "server_workers": args.server_workers,
                               "workload": f"800-word article + 1024x1024 JPEG ({mode} headshots)"}
    if args.peer:
        payload["peer"] = peer_comparison(texts[: args.peer_items], images, settings, results)
        peer = payload["peer"]
        print(f"peer baseline: {peer['checks_per_cpu_s']:.3f} checks/CPU-s, {peer['text_ms']:.0f} ms text + "
              f"{peer['image_ms']:.0f} ms image, {peer['energy_j_per_check_estimated']:.2f} J/check (estimated)")
        print(f"ratio ours/peer (checks per CPU-second, best level): {peer['ratio_checks_per_cpu_s']:.2f}x")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
