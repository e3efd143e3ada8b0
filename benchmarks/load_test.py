"""Load on loopback, bounded in time: N concurrent clients against a real uvicorn for a fixed duration.

Records every request's latency and status, and the server's resident memory (``/proc/PID/status``) once a
second. Prints (and writes as JSON with ``--out``) requests/s, errors by kind, p50/p95/p99 latency and the
memory series with its growth from the first to the last quarter (after a warm-up). The mix: 70 % text
checks (400-word articles), 10 % checks with a 256x256 JPEG headshot, 10 % report fetches, 10 % listings.

    .venv/bin/python -m benchmarks.load_test --minutes 10 --clients 16 --out benchmarks/results/load.json
    .venv/bin/python -m benchmarks.load_test --seconds 30 --detectors fake      # the CI-sized run

``--detectors shipped`` (default) builds the detectors from ``weights/`` (a part whose weights are missing
abstains, so the run still measures the service); ``fake`` uses the fake forward passes of tests/fakes.py.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from service.config import Settings
from service.domain import Scope
from service.store import Store

REPO = Path(__file__).resolve().parents[1]
REUTERS = REPO.parent / "shared" / "datasets" / "text" / "reuters21578_news.jsonl"
WORDS = ["council", "vote", "bridge", "winter", "street", "budget", "mayor", "school", "police", "river", "market",
         "housing", "transport", "election", "court", "hospital", "farmers", "weather", "museum", "library", "harbour"]


@dataclass
class LoadResult:
    clients: int
    duration_s: float
    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    rss_mb: list[tuple[float, float]] = field(default_factory=list)

    @property
    def errors(self) -> int:
        """Transport errors and 5xx (4xx would be our own bad requests: counted too, as errors)."""
        return sum(n for status, n in self.statuses.items() if not status.startswith("2"))

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_s)

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")

        return {
            "clients": self.clients, "duration_s": round(self.duration_s, 1), "requests": len(lat),
            "requests_per_s": round(len(lat) / self.duration_s, 1) if self.duration_s else 0.0,
            "errors": self.errors, "statuses": dict(self.statuses),
            "p50_s": round(pct(0.50), 4), "p95_s": round(pct(0.95), 4), "p99_s": round(pct(0.99), 4),
            "max_s": round(lat[-1], 4) if lat else None,
            "rss_mb_first_quarter": round(_quarter(self.rss_mb, first=True), 1),
            "rss_mb_last_quarter": round(_quarter(self.rss_mb, first=False), 1),
            "rss_growth_mb": round(_quarter(self.rss_mb, first=False) - _quarter(self.rss_mb, first=True), 1),
            "rss_mb_max": round(max((m for _, m in self.rss_mb), default=0.0), 1),
            "rss_series": [(round(t, 1), round(m, 1)) for t, m in self.rss_mb],
        }


def _quarter(series: list[tuple[float, float]], *, first: bool) -> float:
    """Median RSS of the first or last quarter of the samples taken after the first 20 % (warm-up)."""
    samples = [m for _, m in series][len(series) // 5:]
    if not samples:
        return float("nan")
    n = max(1, len(samples) // 4)
    return float(statistics.median(samples[:n] if first else samples[-n:]))


def articles(n: int, words: int = 400) -> list[str]:
    """Real newswire text when ../shared/datasets is there, seeded word salad otherwise."""
    pool: list[str] = []
    if REUTERS.exists():
        with REUTERS.open(encoding="utf-8") as fh:
            for line in fh:
                pool.extend(json.loads(line)["text"].split())
                if len(pool) > n * words:
                    break
    rng = random.Random(7)
    while len(pool) < n * words:
        pool.extend(rng.choice(WORDS) for _ in range(words))
    return [" ".join(pool[i * words:(i + 1) * words]) + "." for i in range(n)]


def headshot(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _client(http: httpx.AsyncClient, result: LoadResult, stop_at: float, texts: list[str],
                  images: list[bytes], seen: list[str], rng: random.Random) -> None:
    while time.monotonic() < stop_at:
        roll = rng.random()
        started = time.perf_counter()
        try:
            if roll < 0.7 or not seen:
                resp = await http.post("/v1/checks", json={"text": rng.choice(texts), "byline": f"Author {rng.randrange(50)}"})
            elif roll < 0.8:
                resp = await http.post("/v1/checks", data={"text": rng.choice(texts), "byline": "Photo Desk"},
                                       files={"headshots": ("h.jpg", rng.choice(images), "image/jpeg")})
            elif roll < 0.9:
                resp = await http.get(f"/v1/checks/{rng.choice(seen)}")
            else:
                resp = await http.get("/v1/checks", params={"byline": f"Author {rng.randrange(50)}", "limit": 20})
        except httpx.HTTPError as exc:
            result.statuses[type(exc).__name__] += 1
            continue
        result.latencies_s.append(time.perf_counter() - started)
        result.statuses[str(resp.status_code)] += 1
        if resp.status_code == 200 and resp.request.method == "POST":
            seen.append(resp.json()["id"])
            del seen[:-1000]


async def _sample_rss(pid: int, result: LoadResult, stop_at: float, started: float) -> None:
    while time.monotonic() < stop_at:
        result.rss_mb.append((time.monotonic() - started, rss_mb(pid)))
        await asyncio.sleep(1.0)


async def run_load(url: str, token: str, *, duration_s: float, clients: int = 16, server_pid: int | None = None,
                   seed: int = 0) -> LoadResult:
    """Drive ``url`` for ``duration_s`` with ``clients`` concurrent clients; sample ``server_pid``'s RSS."""
    texts, images = articles(64), [headshot(i) for i in range(4)]
    result = LoadResult(clients=clients, duration_s=duration_s)
    started = time.monotonic()
    stop_at = started + duration_s
    seen: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        tasks = [_client(http, result, stop_at, texts, images, seen, random.Random(seed + i)) for i in range(clients)]
        if server_pid is not None:
            tasks.append(_sample_rss(server_pid, result, stop_at, started))
        await asyncio.gather(*tasks)
    result.duration_s = time.monotonic() - started
    return result


def server_env(folder: Path, detectors: str) -> dict[str, str]:
    return {"BYLINECHECK_ENVIRONMENT": "test", "BYLINECHECK_DATABASE_URL": f"sqlite:///{folder / 'load.sqlite3'}",
            "BYLINECHECK_BOOTSTRAP_API_KEY": "false", "BYLINECHECK_QUEUE_PATH": str(folder / "queue.sqlite3"),
            "BYLINECHECK_RATE_LIMIT_PER_MINUTE": "0", "BYLINECHECK_LIVE_DETECTORS": detectors}


def api_key(env: dict[str, str]) -> str:
    store = Store(env["BYLINECHECK_DATABASE_URL"], Settings().secret_key.get_secret_value())
    try:
        store.migrate()
        return store.create_api_key("load", [Scope.CHECK])
    finally:
        store.close()


def main() -> None:
    from tests.live import start_child

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--detectors", choices=["shipped", "fake"], default="shipped")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    duration_s = args.minutes * 60 or args.seconds
    with tempfile.TemporaryDirectory() as tmp:
        env = server_env(Path(tmp), args.detectors)
        token = api_key(env)
        server = start_child(env, Path(tmp) / "server.log")
        try:
            result = asyncio.run(run_load(server.url, token, duration_s=duration_s, clients=args.clients,
                                          server_pid=server.process.pid))
        finally:
            server.stop()
    summary = {**result.summary(), "detectors": args.detectors}
    print(json.dumps({k: v for k, v in summary.items() if k != "rss_series"}, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
