"""Reuse search cost against archive size: the SQL + Python loop (before) vs the in-process index (after).

Fills a temporary SQLite store with N headshots (random unit 128-d float32 embeddings, random 64-bit
pHashes, 1-3 headshots per check, 300 bylines, plus planted near-duplicates of the query under other bylines
and under the query's own byline), then times one reuse look-up per N:

* before: ``find_reuse(phash, embedding, store.headshot_fingerprints(key), settings)``
* after, cold: a new ``ReuseIndex`` (full load) + ``candidates(key).find(...)``
* after, warm: ``candidates(key).find(...)`` on a loaded index (incremental refresh finds nothing new)
* after, +1 check: one more check saved by another Store object (another process), then a warm look-up

and checks that before and after return identical matches. Rows are the ORM rows ``Store.save_check`` writes
(same columns and derivations), inserted in large transactions to make 100,000 affordable.

Run: ``nice .venv/bin/python -m benchmarks.bench_reuse`` (writes benchmarks/results/bench_reuse.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from service.config import Settings
from service.headshots import find_reuse
from service.reuse_index import ReuseIndex
from service.store.models import CheckRow, HeadshotRow
from service.store.repository import HeadshotRecord, Store, byline_key

RESULTS = Path(__file__).resolve().parent / "results" / "bench_reuse.json"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
QUERY_BYLINE = "Query Author"


def _rows(check_id: str, created: datetime, byline: str | None,
          heads: list[tuple[str | None, bytes | None]]) -> tuple[CheckRow, list[HeadshotRow]]:
    """The rows Store.save_check writes for such a check."""
    key = byline_key(byline)
    check = CheckRow(id=check_id, created_at=created, api_key_id="-", idempotency_key=None, request_hash="0" * 64,
                     source="bench", byline=byline, byline_key=key, verdict="likely_human", text_probability=None,
                     energy_j=0.0, detector_versions={}, report={"id": check_id})
    heads_rows = [HeadshotRow(check_id=check_id, idx=i, created_at=created, byline_key=key, sha256=f"{i:064x}",
                              phash=ph, embedding=emb, image=None, verdict="likely_human")
                  for i, (ph, emb) in enumerate(heads)]
    return check, heads_rows


class Filler:
    def __init__(self, store: Store, seed: int, query_phash: int, query_emb: np.ndarray) -> None:
        self.store = store
        self.rng = np.random.default_rng(seed)
        self.prng = random.Random(seed)
        self.query_phash, self.query_emb = query_phash, query_emb
        self.count = 0
        self.checks = 0

    def _head(self) -> tuple[str | None, bytes | None]:
        planted = self.prng.random() < 0.001  # ~1 in 1,000 is a near-duplicate of the query
        if planted and self.prng.random() < 0.5:
            step = self.rng.normal(size=128).astype(np.float32)
            emb = self.query_emb + step * np.float32(self.prng.uniform(0.05, 0.4) / np.linalg.norm(step))
        else:
            emb = self.rng.normal(size=128).astype(np.float32)
            emb /= np.linalg.norm(emb)
        value = self.prng.getrandbits(64)
        if planted:
            value = self.query_phash
            for bit in self.prng.sample(range(64), self.prng.randint(0, 12)):
                value ^= 1 << bit
        return f"{value:016x}", (None if self.prng.random() < 0.05 else emb.astype(np.float32).tobytes())

    def fill_to(self, n: int) -> None:
        batch = 5_000
        while self.count < n:
            with self.store.session() as session:
                while self.count < n and len(session.new) < batch:
                    heads = [self._head() for _ in range(min(self.prng.choice([1, 1, 1, 2, 3]), n - self.count))]
                    byline = QUERY_BYLINE if self.prng.random() < 0.01 else f"Author {self.prng.randrange(300)}"
                    created = T0 + timedelta(seconds=self.checks * 30 + self.prng.randint(-60, 60))
                    check, head_rows = _rows(f"chk_bench_{self.checks:08d}", created, byline, heads)
                    session.add(check)
                    session.flush()
                    session.add_all(head_rows)
                    self.count += len(heads)
                    self.checks += 1


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, result


def _measure(n: int, store: Store, other: Store, key: str | None, phash_hex: str, embedding: list[float],
             settings: Settings) -> dict[str, Any]:
    repeat = 3 if n >= 100_000 else 7
    before_ms, before = _timed(
        lambda: find_reuse(phash_hex, embedding, store.headshot_fingerprints(key), settings), repeat)
    fetch_ms, _ = _timed(lambda: store.headshot_fingerprints(key), repeat)

    def cold() -> Any:
        return ReuseIndex(store).candidates(key).find(phash_hex, embedding, settings)

    cold_ms, cold_result = _timed(cold, 3 if n >= 100_000 else 5)
    index = ReuseIndex(store)
    index.candidates(key)
    warm_ms, after = _timed(lambda: index.candidates(key).find(phash_hex, embedding, settings), 21)
    refresh_ms, _ = _timed(lambda: index.candidates(key), 21)
    snapshot = index.candidates(key)
    match_ms, _ = _timed(lambda: snapshot.find(phash_hex, embedding, settings), 21)
    last = index.candidates(None).columns.last_id
    summary_ms, _ = _timed(lambda: store.headshot_index_delta(last, 20_000, last), 21)
    same = [m.model_dump() for m in before] == [m.model_dump() for m in after] == \
        [m.model_dump() for m in cold_result]
    if not same:
        raise SystemExit(f"N={n}: index and reference differ")
    # +1 check from another process, then the next look-up (incremental refresh reads one row).
    plus_one = []
    for j in range(7):
        other.save_check({"id": f"chk_plus_{n}_{j}", "created_at": (T0 + timedelta(days=400)).isoformat(),
                          "byline": "Newcomer", "verdict": "likely_human", "energy": {"joules": 0.0},
                          "detectors": {}}, request_hash="0" * 64, api_key_id=None, idempotency_key=None,
                         source="bench", headshots=[HeadshotRecord(0, "0" * 64, f"{j:016x}", None, None,
                                                                   "likely_human")])
        ms, _ = _timed(lambda: index.candidates(key).find(phash_hex, embedding, settings), 1)
        plus_one.append(ms)
        memory = index.memory_bytes()
    held = index.candidates(None).n
    columns = index.candidates(None).columns
    per_row_arrays = sum(getattr(columns, name).nbytes for name in (
        "embeddings", "sq_norms", "has_embedding", "phashes", "has_phash", "ids", "created", "key_codes",
        "has_check", "idx")) / max(columns.capacity, 1)
    unused = (columns.capacity - columns.n) * per_row_arrays
    return {"n": n, "candidates": snapshot.count, "matches": len(after),
           "before_ms": round(before_ms, 3), "before_fetch_ms": round(fetch_ms, 3),
           "after_cold_ms": round(cold_ms, 3), "after_warm_ms": round(warm_ms, 3),
           "after_refresh_ms": round(refresh_ms, 3), "after_match_ms": round(match_ms, 3),
           "after_plus_one_check_ms": round(statistics.median(plus_one), 3),
           "refresh_round_trip_ms": round(summary_ms, 3), "full_loads": index.full_loads,
           "index_bytes": memory, "bytes_per_headshot": round(memory / held, 1) if held else None,
           "index_bytes_without_spare_capacity": int(memory - unused),
           "bytes_per_headshot_without_spare_capacity": round((memory - unused) / held, 1) if held else None,
           "array_bytes_per_row": per_row_arrays, "capacity_rows": columns.capacity, "held_rows": held,
           "identical": same}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="0,1000,10000,100000")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    settings = Settings(environment="test", bootstrap_api_key=False)
    rng = np.random.default_rng(0)
    query_emb = rng.normal(size=128).astype(np.float32)
    query_emb /= np.linalg.norm(query_emb)
    query_phash = random.Random(0).getrandbits(64)
    phash_hex, embedding = f"{query_phash:016x}", query_emb.tolist()
    key = byline_key(QUERY_BYLINE)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite3"
        store = Store(url, "pepper")
        store.migrate()
        other = Store(url, "pepper")  # "another API process" writing to the same database
        filler = Filler(store, 1, query_phash, query_emb)
        for n in sizes:
            filler.fill_to(n)
            row = _measure(n, store, other, key, phash_hex, embedding, settings)
            filler.count += 7
            rows.append(row)
            print(json.dumps(row), flush=True)
        store.close()
        other.close()
    header = f"{'N':>7} {'cands':>7} {'match':>5} {'before ms':>10} {'(fetch)':>9} {'cold ms':>9} {'warm ms':>8} " \
             f"{'refresh':>8} {'match':>7} {'+1 chk':>7} {'B/row':>7}"
    print(header)
    for r in rows:
        print(f"{r['n']:>7} {r['candidates']:>7} {r['matches']:>5} {r['before_ms']:>10.2f} {r['before_fetch_ms']:>9.2f} "
              f"{r['after_cold_ms']:>9.2f} {r['after_warm_ms']:>8.3f} {r['after_refresh_ms']:>8.3f} "
              f"{r['after_match_ms']:>7.3f} {r['after_plus_one_check_ms']:>7.3f} {r['bytes_per_headshot'] or 0:>7}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "reuse search: Store.headshot_fingerprints + find_reuse (before) vs ReuseIndex (after)",
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}, numpy {np.__version__}",
        "note": "medians, ms of wall time on a shared 2-core VM run under nice; SQLite file in a temp dir; "
                "planted near-duplicates ~1 per 1,000 headshots",
        "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
