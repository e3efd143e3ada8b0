"""Service benchmark: p50/p99 latency, checks/s and energy per check at concurrency 1, 8 and 32.

Starts the real service (uvicorn, loopback only, temporary SQLite) with the shipped detectors and
sends 800-word articles, each with one 1024x1024 JPEG headshot, from ../shared/datasets. Prints a
table and writes JSON (``--out``). A benchmark, not a test: it asserts nothing.

    .venv/bin/python -m benchmarks.bench_checks --requests 64 --out benchmarks/results/checks.json
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
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from PIL import Image

from service.api import create_app
from service.config import Settings
from service.domain import Scope

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"


def articles(n: int, words: int = 800) -> list[str]:
    """``n`` articles of ``words`` words, made by joining consecutive human Reuters stories."""
    pool: list[str] = []
    with (SHARED / "text" / "reuters21578_news.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            pool.extend(json.loads(line)["text"].split())
            if len(pool) > n * words:
                break
    return [" ".join(pool[i * words:(i + 1) * words]) for i in range(n)]


def headshot_jpeg() -> bytes:
    folder = SHARED / "faces" / "real_ciplab"
    source = next(iter(sorted(folder.glob("*.jpg"))), None)
    image = Image.open(source).convert("RGB") if source else Image.new("RGB", (600, 600), (128, 100, 90))
    buf = io.BytesIO()
    image.resize((1024, 1024), Image.Resampling.BICUBIC).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, str]:
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    token = app.state.store.create_api_key("bench", [Scope.CHECK])
    return server, thread, token


async def run_level(base: str, token: str, concurrency: int, total: int, texts: list[str], image: bytes) -> dict[str, Any]:
    latencies: list[float] = []
    joules: list[float] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while not queue.empty():
            i = queue.get_nowait()
            files = [("text", ("a.txt", texts[i % len(texts)].encode(), "text/plain")),
                     ("headshots", ("h.jpg", image, "image/jpeg"))]
            started = time.perf_counter()
            resp = await client.post("/v1/checks", files=files, data={"byline": f"Bench {i}"})
            latencies.append(time.perf_counter() - started)
            if resp.status_code != 200:
                errors += 1
                continue
            energy = resp.json()["energy"]["joules"]
            if energy is not None:
                joules.append(energy)

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    wall = time.perf_counter() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    ordered = sorted(latencies)
    return {
        "concurrency": concurrency,
        "requests": total,
        "errors": errors,
        "checks_per_s": total / wall,
        "checks_per_cpu_s": total / cpu_s if cpu_s else None,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "energy_j_per_check_mean": statistics.fmean(joules) if joules else None,
    }


def peer_comparison(texts: list[str], image: bytes, settings: Settings, results: list[dict[str, Any]]) -> dict[str, Any]:
    import numpy as np

    from benchmarks.peer_baseline import run_peer_baseline

    pixels = np.asarray(Image.open(io.BytesIO(image)).convert("RGB"))
    peer = run_peer_baseline(texts, [pixels] * len(texts), settings.cpu_core_power_w)
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
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bylinecheck-bench-"))
    settings = Settings(database_url=f"sqlite:///{tmp / 'bench.sqlite3'}", port=free_port(), bootstrap_api_key=False,
                        max_queue=1024)
    server, thread, token = start_server(settings)
    texts, image = articles(32), headshot_jpeg()
    results = []
    try:
        for level in args.levels:
            results.append(asyncio.run(run_level(f"http://127.0.0.1:{settings.port}", token, level, args.requests,
                                                 texts, image)))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    print(f"{'conc':>5} {'req':>5} {'err':>4} {'checks/s':>9} {'chk/CPU-s':>9} {'p50 ms':>8} {'p99 ms':>8} {'J/check':>8}")
    for r in results:
        energy = r["energy_j_per_check_mean"]
        print(f"{r['concurrency']:>5} {r['requests']:>5} {r['errors']:>4} {r['checks_per_s']:>9.2f} "
              f"{(r['checks_per_cpu_s'] or 0):>9.2f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
              f"{(energy if energy is not None else float('nan')):>8.3f}")
    payload: dict[str, Any] = {"cpu_count": os.cpu_count(), "results": results,
                               "workload": "800-word article + 1024x1024 JPEG"}
    if args.peer:
        payload["peer"] = peer_comparison(texts[: args.peer_items], image, settings, results)
        peer = payload["peer"]
        print(f"peer baseline: {peer['checks_per_cpu_s']:.3f} checks/CPU-s, {peer['text_ms']:.0f} ms text + "
              f"{peer['image_ms']:.0f} ms image, {peer['energy_j_per_check_estimated']:.2f} J/check (estimated)")
        print(f"ratio ours/peer (checks per CPU-second, best level): {peer['ratio_checks_per_cpu_s']:.2f}x")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
