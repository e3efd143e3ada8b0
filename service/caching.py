"""A bounded, thread-safe LRU cache of preprocessed items, keyed by content hash and model version.

Caveats first: newsrooms send the same byline headshot with every article, so the face detector's
preprocessing (face finding, alignment, cues, embedding: nearly all of a headshot's CPU) is cached by the
sha256 of the uploaded bytes. The key also holds the detector's name and version and whatever else changes
the preprocessing (the pipeline adds the decode size and the embedding setting), so a new model version never
reads an old entry; old entries simply age out. Cached values are shared between checks and must not be
mutated. The face batcher keeps a second instance for the detector's finished outputs under the same keys
(``Pipeline.headshot_outputs``): a repeated upload is then answered without preprocessing or a forward pass
(face 2.x's CNN: 7-9 ms of CPU per face), with the output the first check computed, and its energy is the look-up's
own CPU time. The pipeline keeps a third instance for the headshot's provenance findings and pHash
(``Pipeline.evidence_cache``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class PreparedCache:
    """``get``/``put`` under a lock; at most ``max_entries`` entries (0 disables the cache)."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Any | None:
        """The cached value (and mark it recently used), or None."""
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (not None), evicting the least recently used entries beyond the bound."""
        if self.max_entries == 0 or value is None:
            return
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
