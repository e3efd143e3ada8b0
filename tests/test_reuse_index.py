"""The in-process reuse index gives exactly what the straightforward search gives.

Reference: ``find_reuse`` (service/headshots.py) over ``Store.headshot_fingerprints`` - the SQL query and
the per-candidate Python loop the service used before the index.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete

from service.config import Settings
from service.headshots import find_reuse
from service.reuse_index import ReuseIndex
from service.schemas import ReuseMatch
from service.store.models import CheckRow, HeadshotRow
from service.store.repository import HeadshotRecord, Store, byline_key

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _store(path: Path) -> Store:
    store = Store(f"sqlite:///{path}", "pepper")
    store.migrate()
    return store


def _settings(**overrides: object) -> Settings:
    return Settings(environment="test", bootstrap_api_key=False, **overrides)  # type: ignore[arg-type]


def _save(store: Store, check_id: str, created_at: datetime, byline: str | None,
          heads: Sequence[tuple[str | None, bytes | None]]) -> None:
    report = {"id": check_id, "created_at": created_at.isoformat(), "byline": byline, "verdict": "uncertain",
              "energy": {"joules": 0.0}, "detectors": {}}
    records = [HeadshotRecord(idx=i, sha256=f"{i:064x}", phash=ph, embedding=emb, image=None, verdict="uncertain")
               for i, (ph, emb) in enumerate(heads)]
    store.save_check(report, request_hash="h", api_key_id=None, idempotency_key=None, source="test",
                     headshots=records)


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=128).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _near(rng: np.random.Generator, base: np.ndarray, distance: float) -> np.ndarray:
    step = rng.normal(size=128).astype(np.float32)
    return (base + step * np.float32(distance / np.linalg.norm(step))).astype(np.float32)


def _flip(rng: random.Random, value: int, bits: int) -> int:
    for b in rng.sample(range(64), bits):
        value ^= 1 << b
    return value


def _dump(matches: Sequence[ReuseMatch]) -> list[dict[str, object]]:
    return [m.model_dump() for m in matches]


def _reference(store: Store, key: str | None, phash: str, emb: Sequence[float] | None, settings: Settings,
               limit: int) -> list[ReuseMatch]:
    return find_reuse(phash, emb, store.headshot_fingerprints(key, limit), settings)


BYLINES = ["Drew Ortiz", "drew  ORTIZ", "Sora Tanaka", "Ana Li", None, "", "Kim Park"]


def _fill_random(store: Store, seed: int, checks: int, queries: list[tuple[str, np.ndarray]]) -> None:
    """Random checks with planted near-duplicates of the query fingerprints (some right at the thresholds),
    created_at ties and out-of-id-order timestamps, rows without embedding or pHash."""
    rng = np.random.default_rng(seed)
    prng = random.Random(seed)
    for c in range(checks):
        created = T0 + timedelta(seconds=prng.choice([0, 1, 2, 3, prng.randint(0, 5000)]))
        heads: list[tuple[str | None, bytes | None]] = []
        for _ in range(prng.choice([1, 1, 2, 3])):
            qhash, qemb = prng.choice(queries)
            kind = prng.random()
            if kind < 0.25:
                emb = _near(rng, qemb, prng.choice([0.05, 0.2, 0.34, 0.3499, 0.35, 0.3501, 0.36, 0.5]))
            elif kind < 0.35:
                emb = qemb.copy()
            else:
                emb = _unit(rng)
            if prng.random() < 0.4:
                phash = f"{_flip(prng, int(qhash, 16), prng.choice([0, 3, 9, 10, 11, 20])):016x}"
            else:
                phash = f"{prng.getrandbits(64):016x}"
            heads.append((None if prng.random() < 0.1 else phash,
                          None if prng.random() < 0.2 else emb.tobytes()))
        _save(store, f"chk_{seed}_{c:05d}", created, prng.choice(BYLINES), heads)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_randomized_equivalence_with_reference(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    prng = random.Random(seed)
    queries = [(f"{prng.getrandbits(64):016x}", _unit(rng)) for _ in range(4)]
    store = _store(tmp_path / "a.sqlite3")
    _fill_random(store, seed, 300, queries)
    compared = nonempty = 0
    for limit in (100_000, 150, 7):
        index = ReuseIndex(store, limit)
        for qhash, qemb in queries:
            for key in (None, byline_key("Drew Ortiz"), byline_key("Sora Tanaka"), "", "nobody"):
                for emb in (qemb.tolist(), None):
                    for settings in (_settings(), _settings(reuse_phash_max_distance=0),
                                     _settings(reuse_embedding_max_distance=0.5, reuse_phash_max_distance=64)):
                        got = index.candidates(key).find(qhash, emb, settings)
                        want = _reference(store, key, qhash, emb, settings, limit)
                        assert _dump(got) == _dump(want), (limit, key, settings)
                        compared += 1
                        nonempty += bool(want)
    assert compared == 3 * 4 * 5 * 2 * 3
    assert nonempty > compared // 2  # the planted matches are found, not just empty lists compared


def test_threshold_exactly_at_a_planted_distance(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    store = _store(tmp_path / "a.sqlite3")
    query = _unit(rng)
    planted = [_near(rng, query, d) for d in (0.3, 0.30000001, 0.2999999, 0.31)]
    _save(store, "chk_a", T0, "Ana Li", [(None, e.tobytes()) for e in planted])
    index = ReuseIndex(store)
    for e in planted:
        exact = float(np.linalg.norm(query - e))  # the reference's own distance as the limit: equality case
        settings = _settings(reuse_embedding_max_distance=exact)
        got = index.candidates(None).find("0" * 16, query.tolist(), settings)
        assert _dump(got) == _dump(_reference(store, None, "0" * 16, query.tolist(), settings, 100_000))
        assert any(m.similarity == round(1.0 - exact, 4) for m in got)


def test_byline_exclusion_and_null_keys(tmp_path: Path) -> None:
    store = _store(tmp_path / "a.sqlite3")
    emb = _unit(np.random.default_rng(1)).tobytes()
    _save(store, "chk_1", T0, "Drew Ortiz", [("ab" * 8, emb)])
    _save(store, "chk_2", T0 + timedelta(seconds=1), None, [("ab" * 8, emb)])
    _save(store, "chk_3", T0 + timedelta(seconds=2), "   ", [("ab" * 8, emb)])  # key normalises to NULL
    _save(store, "chk_4", T0 + timedelta(seconds=3), "Sora Tanaka", [("ab" * 8, None)])
    index = ReuseIndex(store)
    settings = _settings()
    vector = np.frombuffer(emb, dtype=np.float32).tolist()

    def ids(key: str | None) -> list[str]:
        return [m.check_id for m in index.candidates(key).find("ab" * 8, vector, settings)]

    # All similarities are 1.0 (same embedding / same pHash): newest first.
    assert ids(byline_key("DREW   ortiz")) == ["chk_4", "chk_3", "chk_2"]
    assert ids(None) == ["chk_4", "chk_3", "chk_2", "chk_1"]  # NULL key excludes nothing
    assert ids(byline_key("Sora Tanaka")) == ["chk_3", "chk_2", "chk_1"]
    for key in (None, byline_key("Drew Ortiz"), byline_key("Sora Tanaka")):
        assert ids(key) == [m.check_id for m in _reference(store, key, "ab" * 8, vector, settings, 100_000)]


def test_empty_store_and_rows_without_fingerprints(tmp_path: Path) -> None:
    store = _store(tmp_path / "a.sqlite3")
    index = ReuseIndex(store)
    settings = _settings()
    assert index.candidates(None).find("00" * 8, [0.0] * 128, settings) == []
    assert index.candidates("x").count == 0
    _save(store, "chk_1", T0, "A", [(None, None), (None, None)])
    candidates = index.candidates(None)
    assert candidates.count == 2
    assert candidates.find("00" * 8, [0.0] * 128, settings) == []
    assert candidates.find("00" * 8, None, settings) == []


def test_odd_rows_use_the_reference_rules(tmp_path: Path) -> None:
    """Embeddings of another length and pHashes that are not 16 lowercase hex digits still match as before."""
    store = _store(tmp_path / "a.sqlite3")
    short = np.ones(64, dtype=np.float32) / 8
    _save(store, "chk_1", T0, "A", [("ABCDEF0123456789", None), (None, short.tobytes()),
                                    ("abcdef0123456789", np.zeros(128, np.float32).tobytes())])
    index = ReuseIndex(store)
    settings = _settings()
    for emb in (short.tolist(), np.zeros(128).tolist(), None):
        got = index.candidates("b").find("abcdef0123456788", emb, settings)
        assert _dump(got) == _dump(_reference(store, "b", "abcdef0123456788", emb, settings, 100_000))
        assert got
    assert [m.method for m in index.candidates("b").find("abcdef0123456788", short.tolist(), settings)] == \
        ["face_embedding", "perceptual_hash", "perceptual_hash"]


def test_incremental_refresh_sees_another_process(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    mine, other = _store(path), Store(f"sqlite:///{path}", "pepper")
    emb = _unit(np.random.default_rng(3))
    index = ReuseIndex(mine)
    settings = _settings()
    assert index.candidates(None).find("11" * 8, emb.tolist(), settings) == []
    for i in range(5):
        _save(other, f"chk_{i}", T0 + timedelta(seconds=10 - i), f"Writer {i}", [("11" * 8, emb.tobytes())])
        got = index.candidates(byline_key("Writer 0")).find("11" * 8, emb.tolist(), settings)
        assert [m.check_id for m in got] == [f"chk_{j}" for j in range(1, i + 1)]  # older created_at last
        assert _dump(got) == _dump(_reference(mine, byline_key("Writer 0"), "11" * 8, emb.tolist(), settings,
                                              100_000))
    assert index.full_loads == 1  # one initial load, then only incremental reads


def test_snapshot_is_fixed_when_the_check_starts(tmp_path: Path) -> None:
    store = _store(tmp_path / "a.sqlite3")
    emb = _unit(np.random.default_rng(4))
    _save(store, "chk_1", T0, "A", [("22" * 8, emb.tobytes())])
    index = ReuseIndex(store)
    snapshot = index.candidates(None)
    for i in range(2, 1200):  # past the first capacity: the arrays are reallocated under the snapshot
        _save(store, f"chk_{i}", T0, "B", [("22" * 8, emb.tobytes())])
        if i % 400 == 0:
            index.candidates(None)
    assert [m.check_id for m in snapshot.find("22" * 8, emb.tolist(), _settings())] == ["chk_1"]
    assert len(index.candidates(None).find("22" * 8, emb.tolist(), _settings())) == 20


@pytest.mark.parametrize("how", ["delete_old", "delete_newest_then_reuse_id", "delete_check_cascade"])
def test_deletions_are_not_left_stale(tmp_path: Path, how: str) -> None:
    path = tmp_path / "a.sqlite3"
    store, other = _store(path), Store(f"sqlite:///{path}", "pepper")
    emb = _unit(np.random.default_rng(5))
    for i in range(6):
        _save(store, f"chk_{i}", T0 + timedelta(seconds=i), f"W{i}", [("33" * 8, emb.tobytes())])
    index = ReuseIndex(store)
    settings = _settings()
    assert len(index.candidates(None).find("33" * 8, emb.tolist(), settings)) == 6
    with other.session() as session:  # another process deletes
        if how == "delete_old":
            session.execute(delete(HeadshotRow).where(HeadshotRow.check_id == "chk_1"))
        elif how == "delete_check_cascade":
            session.execute(delete(CheckRow).where(CheckRow.id == "chk_2"))
        else:
            session.execute(delete(HeadshotRow).where(HeadshotRow.check_id == "chk_5"))
    if how == "delete_newest_then_reuse_id":  # SQLite hands the deleted max rowid to the next insert
        _save(other, "chk_new", T0 - timedelta(days=1), "W9", [("44" * 8, emb.tobytes())])
    got = index.candidates(None).find("33" * 8, emb.tolist(), settings)
    assert _dump(got) == _dump(_reference(store, None, "33" * 8, emb.tolist(), settings, 100_000))
    assert len(got) == (6 if how == "delete_newest_then_reuse_id" else 5)
    assert index.full_loads == 2


def test_invalidate_reloads(tmp_path: Path) -> None:
    store = _store(tmp_path / "a.sqlite3")
    _save(store, "chk_1", T0, "A", [("55" * 8, None)])
    index = ReuseIndex(store)
    assert index.candidates(None).count == 1
    index.invalidate()
    assert index.candidates(None).count == 1
    assert index.full_loads == 2
    assert index.memory_bytes() > 0


def test_limit_with_created_at_ties(tmp_path: Path) -> None:
    store = _store(tmp_path / "a.sqlite3")
    emb = _unit(np.random.default_rng(6))
    for i in range(30):  # all at the same instant but one: the limit cuts inside the tie, by id
        _save(store, f"chk_{i:02d}", T0 + timedelta(seconds=1 if i == 0 else 0), "A" if i % 3 else None,
              [("66" * 8, emb.tobytes())])
    settings = _settings()
    for limit in (1, 2, 5, 10, 19, 20, 29, 30, 31):
        got = ReuseIndex(store, limit).candidates("b").find("66" * 8, emb.tolist(), settings)
        assert _dump(got) == _dump(_reference(store, "b", "66" * 8, emb.tolist(), settings, limit))
        assert len(got) == min(limit, 20)
