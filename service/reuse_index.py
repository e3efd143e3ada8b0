"""In-process index of stored headshot fingerprints for reuse search (one per Pipeline, no global state).

What it replaces: every check read up to ``reuse_candidate_limit`` headshot rows from the database and
compared them one by one in Python (:func:`service.headshots.find_reuse`). The index keeps the fingerprints
in numpy arrays (128-d float32 embeddings, 64-bit pHashes, ids, ``created_at``, byline codes) and matches a
new headshot with one matrix-vector product and one XOR + popcount over all of them.

Results are identical to ``find_reuse`` over ``Store.headshot_fingerprints`` (same candidates: other bylines
- NULL keys never excluded - newest ``limit`` by ``(created_at, id)`` descending; same per-candidate rule,
embedding match first, else pHash; same similarity values and tie order). The vectorised embedding
distance is only a filter with a safety margin: every survivor's distance is recomputed exactly as
``find_reuse`` computes it. Rows the fast path cannot represent (embeddings that are not 128 float32,
pHashes that are not 16 hex digits) are matched by the reference code, and a query it cannot represent
(a malformed pHash, a NaN similarity) falls back to ``find_reuse`` over the same candidates.

Freshness: :meth:`ReuseIndex.candidates` first reads rows with ``id`` above the last one seen (other API
processes share the database), then compares ``COUNT(*)`` and ``MAX(id)`` with what it holds and re-reads
the row at its previous last id, in one session; any difference (deleted rows, a row committed behind the
last id - PostgreSQL sequences - or a reused SQLite rowid) triggers a full reload. Not caught: between two
look-ups, as many rows deleted as committed behind the last id (counts equal); the service never deletes
headshot rows (retention only clears ``image``; checks are immutable), and :meth:`ReuseIndex.invalidate`
forces a reload after a local delete.

Memory: ~0.69 KB per headshot (551 bytes of arrays, 512 of them the embedding, plus the check id string),
plus up to 25% spare capacity: 76 MB at 100,000 (benchmarks/bench_reuse.py).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from service.config import Settings
from service.headshots import _embedding_match, _phash_match, find_reuse
from service.schemas import ReuseMatch
from service.store.repository import HeadshotFingerprint, HeadshotIndexRow, Store

EMBEDDING_DIM = 128
_EMBEDDING_BYTES = EMBEDDING_DIM * 4
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_LOAD_CHUNK = 20_000
_MAX_MATCHES = 20
# Python's round(), as find_reuse applies it, for every possible pHash distance.
_PHASH_SIMILARITY = np.array([round(1.0 - d / 64.0, 4) for d in range(65)], dtype=np.float64)


def _popcount(values: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        return np.asarray(np.bitwise_count(values))
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)  # pragma: no cover - numpy 1.x
    return np.asarray(table[values.view(np.uint8).reshape(-1, 8)].sum(axis=1, dtype=np.uint8))


def _canonical_phash(value: str | None) -> int | None:
    """The hash as an int when it is 16 hex digits (what perceptual_hash writes), else None."""
    if value is None or len(value) != 16 or not _HEX_DIGITS.issuperset(value):
        return None
    return int(value, 16)


def _micros(value: datetime) -> int:
    """Sort key with the database's order: SQLite hands back naive wall times (compared as written),
    PostgreSQL aware instants."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return (aware - _EPOCH) // _MICROSECOND


class _Columns:
    """Growable columns of one full load; appends never touch rows a snapshot can see."""

    def __init__(self, capacity: int = 1024) -> None:
        self.n = 0
        self.capacity = 0
        self.last_id = 0
        self.last_pos = -1
        self.embeddings = np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        self.sq_norms = np.zeros(0, dtype=np.float32)
        self.has_embedding = np.zeros(0, dtype=bool)
        self.phashes = np.zeros(0, dtype=np.uint64)
        self.has_phash = np.zeros(0, dtype=bool)
        self.ids = np.zeros(0, dtype=np.int64)
        self.created = np.zeros(0, dtype=np.int64)
        self.key_codes = np.zeros(0, dtype=np.int32)
        self.has_check = np.zeros(0, dtype=bool)
        self.idx = np.zeros(0, dtype=np.int32)
        self.check_ids: list[str] = []
        self.bylines: list[str | None] = []
        self.key_table: dict[str, int] = {}
        # Rows the arrays cannot represent: position -> stored embedding / pHash, matched by the reference code.
        self.odd_embeddings: dict[int, bytes] = {}
        self.odd_phashes: dict[int, str] = {}
        self._grow(capacity)

    def fit(self) -> None:
        """After a full load: keep 1/8 spare room (growth adds 1/4) for the rows to come."""
        self._resize(self.n + max(1024, self.n // 8))

    def _grow(self, needed: int) -> None:
        if needed > self.capacity:
            self._resize(max(needed, self.capacity + self.capacity // 4, 1024))  # spare room <= 25%

    def _resize(self, capacity: int) -> None:
        for name in ("embeddings", "sq_norms", "has_embedding", "phashes", "has_phash", "ids", "created",
                     "key_codes", "has_check", "idx"):
            old = getattr(self, name)
            new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)  # snapshots keep the old arrays; nothing below n changes
        self.capacity = capacity

    def append(self, rows: Sequence[HeadshotIndexRow]) -> None:
        if not rows:
            return
        self._grow(self.n + len(rows))
        for row in rows:
            i = self.n
            self.ids[i] = row.id
            self.created[i] = _micros(row.created_at)
            self.idx[i] = row.idx
            self.has_check[i] = row.has_check
            self.key_codes[i] = -1 if row.byline_key is None else \
                self.key_table.setdefault(row.byline_key, len(self.key_table))
            self.check_ids.append(row.check_id)
            self.bylines.append(row.byline)
            if row.embedding is not None:
                if len(row.embedding) == _EMBEDDING_BYTES:
                    vector = np.frombuffer(row.embedding, dtype=np.float32)
                    self.embeddings[i] = vector
                    self.sq_norms[i] = np.dot(vector, vector)
                    self.has_embedding[i] = True
                else:
                    self.odd_embeddings[i] = row.embedding
            if row.phash is not None:
                value = _canonical_phash(row.phash)
                if value is None:
                    self.odd_phashes[i] = row.phash
                else:
                    self.phashes[i] = value
                    self.has_phash[i] = True
            if row.id > self.last_id:
                self.last_id, self.last_pos = row.id, i
            self.n = i + 1

    def same_row(self, pos: int, row: HeadshotIndexRow) -> bool:
        """Whether the row held at ``pos`` is ``row`` (a reused id or a changed row reads as different)."""
        if not (0 <= pos < self.n and int(self.ids[pos]) == row.id and int(self.created[pos]) == _micros(row.created_at)
                and bool(self.has_check[pos]) == row.has_check):
            return False
        held = self.fingerprint(pos)
        return (held.check_id, held.idx, held.byline_key, held.byline, held.phash, held.embedding) == \
            (row.check_id, row.idx, row.byline_key, row.byline, _phash_text(row.phash), row.embedding)

    def key_table_inverse(self) -> list[str]:
        inverse = [""] * len(self.key_table)
        for key, code in self.key_table.items():
            inverse[code] = key
        return inverse

    def fingerprint(self, pos: int, inverse: list[str] | None = None) -> HeadshotFingerprint:
        """The row as Store.headshot_fingerprints returns it (pHash text normalised to lowercase)."""
        code = int(self.key_codes[pos])
        key = None if code < 0 else (inverse or self.key_table_inverse())[code]
        embedding = self.odd_embeddings.get(pos)
        if self.has_embedding[pos]:
            embedding = self.embeddings[pos].tobytes()
        phash = self.odd_phashes.get(pos)
        if self.has_phash[pos]:
            phash = f"{int(self.phashes[pos]):016x}"
        return HeadshotFingerprint(self.check_ids[pos], int(self.idx[pos]), key, self.bylines[pos], phash, embedding)


def _phash_text(value: str | None) -> str | None:
    parsed = _canonical_phash(value)
    return value if parsed is None else f"{parsed:016x}"


@dataclass
class ReuseCandidates:
    """A check's view of the index: the headshots it may match (fixed when the check starts)."""

    columns: _Columns
    n: int
    included: np.ndarray  # bool[n]: candidate (has a check, other byline, within the newest `limit`)
    order_created: np.ndarray = field(repr=False)
    order_ids: np.ndarray = field(repr=False)
    # Copies taken under the index lock (normally empty): later appends must not change them mid-iteration.
    odd_embeddings: dict[int, bytes] = field(default_factory=dict, repr=False)
    odd_phashes: dict[int, str] = field(default_factory=dict, repr=False)

    @property
    def count(self) -> int:
        return int(np.count_nonzero(self.included))

    def positions(self) -> np.ndarray:
        """Candidate positions, newest first (the order Store.headshot_fingerprints returns)."""
        pos = np.flatnonzero(self.included)
        return pos[np.lexsort((-self.order_ids[pos], -self.order_created[pos]))]

    def fingerprints(self) -> list[HeadshotFingerprint]:
        """The candidates as Store.headshot_fingerprints would return them (slow; fallback and tests)."""
        inverse = self.columns.key_table_inverse()
        return [self.columns.fingerprint(int(p), inverse) for p in self.positions()]

    def find(self, phash_hex: str, embedding: Sequence[float] | None, settings: Settings) -> list[ReuseMatch]:
        """Same result as ``find_reuse(phash_hex, embedding, self.fingerprints(), settings)``."""
        if self.n == 0 or not self.included.any():
            return []
        query_hash = _canonical_phash(phash_hex)
        if query_hash is None:  # malformed query hash: the reference raises or decides per candidate
            return find_reuse(phash_hex, embedding, self.fingerprints(), settings)
        cols, n, included = self.columns, self.n, self.included
        vector = None if embedding is None else np.asarray(embedding, dtype=np.float32)
        max_distance = settings.reuse_embedding_max_distance

        emb_pos: list[int] = []
        emb_sim: list[float] = []
        if vector is not None and vector.shape == (EMBEDDING_DIM,):
            # ||e - v||^2 = ||e||^2 - 2 e.v + ||v||^2 as a filter; the margin covers float32 rounding (~1e-5
            # relative) many times over, NaN passes through. Survivors get find_reuse's exact distance.
            v_sq = np.float32(np.dot(vector, vector))
            approx = cols.sq_norms[:n] - np.float32(2.0) * (cols.embeddings[:n] @ vector) + v_sq
            bound = np.float32(max_distance * max_distance * (1 + 1e-4) + 1e-6) \
                + np.float32(1e-4) * (cols.sq_norms[:n] + v_sq)
            survivors = np.flatnonzero(~(approx > bound) & cols.has_embedding[:n] & included)
            for p in survivors.tolist():
                distance = float(np.linalg.norm(vector - cols.embeddings[p]))
                if not distance > max_distance:
                    emb_pos.append(p)
                    emb_sim.append(round(1.0 - distance, 4))
        odd_matches: list[tuple[int, float, str]] = []
        if vector is not None:
            for p, stored in self.odd_embeddings.items():
                if p < n and included[p]:
                    match = _embedding_match(vector, _stub(stored, None), settings)
                    if match is not None:
                        odd_matches.append((p, match.similarity, match.method))

        emb_matched = np.zeros(n, dtype=bool)
        emb_matched[emb_pos] = True
        for p, _, _ in odd_matches:
            emb_matched[p] = True
        distances = _popcount(cols.phashes[:n] ^ np.uint64(query_hash))
        hash_pos = np.flatnonzero((distances <= settings.reuse_phash_max_distance) & cols.has_phash[:n]
                                  & included & ~emb_matched)
        for p, stored_hash in self.odd_phashes.items():
            if p < n and included[p] and not emb_matched[p]:
                match = _phash_match(phash_hex, _stub(None, stored_hash), settings)
                if match is not None:
                    odd_matches.append((p, match.similarity, match.method))

        positions = np.concatenate([np.asarray(emb_pos, dtype=np.int64), hash_pos.astype(np.int64),
                                    np.asarray([m[0] for m in odd_matches], dtype=np.int64)])
        if positions.size == 0:
            return []
        similarity = np.concatenate([np.asarray(emb_sim, dtype=np.float64), _PHASH_SIMILARITY[distances[hash_pos]],
                                     np.asarray([m[1] for m in odd_matches], dtype=np.float64)])
        if np.isnan(similarity).any():  # list.sort with NaN keys has no total order to reproduce: use it
            return find_reuse(phash_hex, embedding, self.fingerprints(), settings)
        methods = ["face_embedding"] * len(emb_pos) + ["perceptual_hash"] * len(hash_pos) + [m[2] for m in odd_matches]
        # -similarity first, then the candidates' order (created_at, id descending): list.sort is stable.
        ranked = np.lexsort((-self.order_ids[positions], -self.order_created[positions], -similarity))[:_MAX_MATCHES]
        matches = []
        for k in ranked.tolist():
            p = int(positions[k])
            matches.append(ReuseMatch(check_id=cols.check_ids[p], byline=cols.bylines[p], headshot_index=int(cols.idx[p]),
                                      similarity=float(similarity[k]), method=methods[k]))
        return matches


def _stub(embedding: bytes | None, phash: str | None) -> HeadshotFingerprint:
    return HeadshotFingerprint("", 0, None, None, phash, embedding)


class ReuseIndex:
    """Fingerprints of every stored headshot, refreshed incrementally from the store before each check."""

    def __init__(self, store: Store, limit: int = 100_000) -> None:
        self.store = store
        self.limit = limit
        self._lock = threading.Lock()
        self._columns: _Columns | None = None
        self.full_loads = 0

    def invalidate(self) -> None:
        """Forget everything (call after deleting headshot rows); the next look-up reloads."""
        with self._lock:
            self._columns = None

    def candidates(self, exclude_byline_key: str | None) -> ReuseCandidates:
        """Refresh, then the headshots a check under ``exclude_byline_key`` may match."""
        with self._lock:
            columns = self._refresh()
            n = columns.n
            ids, created = columns.ids[:n], columns.created[:n]
            included = columns.has_check[:n].copy()
            code = None if exclude_byline_key is None else columns.key_table.get(exclude_byline_key)
            odd_embeddings = {p: b for p, b in columns.odd_embeddings.items() if p < n}
            odd_phashes = {p: h for p, h in columns.odd_phashes.items() if p < n}
        if code is not None:
            included &= columns.key_codes[:n] != code
        eligible = int(np.count_nonzero(included))
        if eligible > self.limit:
            included &= _newest(created, ids, included, self.limit)
        return ReuseCandidates(columns, n, included, created, ids, odd_embeddings, odd_phashes)

    def memory_bytes(self) -> int:
        """Bytes held by the arrays (capacity) plus the per-row Python objects (estimate via sys.getsizeof)."""
        columns = self._columns
        if columns is None:
            return 0
        arrays: int = sum(int(getattr(columns, name).nbytes) for name in (
            "embeddings", "sq_norms", "has_embedding", "phashes", "has_phash", "ids", "created", "key_codes",
            "has_check", "idx"))
        lists = sys.getsizeof(columns.check_ids) + sys.getsizeof(columns.bylines)
        lists += sum(sys.getsizeof(s) for s in columns.check_ids)
        lists += sum(sys.getsizeof(s) for s in {id(b): b for b in columns.bylines if b is not None}.values())
        return arrays + lists

    def _refresh(self) -> _Columns:
        columns = self._columns
        if columns is None:
            return self._reload()
        previous_last, previous_pos = columns.last_id, columns.last_pos
        for _ in range(4):
            delta = self.store.headshot_index_delta(columns.last_id, _LOAD_CHUNK, previous_last)
            columns.append(delta.rows)
            if len(delta.rows) == _LOAD_CHUNK:
                self._read_after(columns)  # a backlog: drain it, then look again
                continue
            if previous_last > 0 and (delta.verified is None or not columns.same_row(previous_pos, delta.verified)):
                return self._reload()  # the row at our last id is gone or is another row (reused SQLite rowid)
            if delta.max_id <= columns.last_id:
                break
        else:
            return columns  # rows keep arriving; the counts are checked on the next look-up
        if (delta.count, delta.max_id) != (columns.n, columns.last_id):
            return self._reload()  # rows deleted, or committed behind our last id
        return columns

    def _read_after(self, columns: _Columns) -> None:
        while True:
            rows = self.store.headshot_index_rows(columns.last_id, _LOAD_CHUNK)
            columns.append(rows)
            if len(rows) < _LOAD_CHUNK:
                return

    def _reload(self) -> _Columns:
        columns = _Columns()
        self._read_after(columns)
        columns.fit()
        self._columns = columns
        self.full_loads += 1
        return columns


def _newest(created: np.ndarray, ids: np.ndarray, mask: np.ndarray, limit: int) -> np.ndarray:
    """Mask of the ``limit`` newest rows among ``mask`` by (created, id) descending, in O(n)."""
    c, i = created[mask], ids[mask]
    drop = c.size - limit  # the oldest `drop` go; the first kept has ascending rank `drop`
    cut = np.partition(c, drop)[drop]
    older = int(np.count_nonzero(c < cut))
    tied = np.sort(i[c == cut])
    id_cut = tied[drop - older]
    return np.asarray((created > cut) | ((created == cut) & (ids >= id_cut)))

