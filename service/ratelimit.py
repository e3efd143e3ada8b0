"""Per-API-key rate limits: a token bucket per key, refilled continuously.

Caveats first: buckets live in the process, so with N API replicas a key gets up to N times the
rate; put the limit at the load balancer too when that matters. The clock is injectable for tests.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from service.errors import ServiceError


class RateLimitedError(ServiceError):
    status_code = 429
    code = "rate_limited"


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``per_minute`` sustained requests per key with bursts up to ``burst``; 0 disables."""

    def __init__(self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = per_minute / 60.0
        self.burst = max(burst, 1)
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> None:
        """Spend one token for ``key`` or raise RateLimitedError with Retry-After (seconds)."""
        if self.rate_per_s <= 0:
            return
        now = self.clock()
        with self._lock:
            bucket = self._buckets.setdefault(key, _Bucket(tokens=float(self.burst), updated=now))
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate_per_s)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            wait_s = math.ceil((1.0 - bucket.tokens) / self.rate_per_s)
        raise RateLimitedError("rate limit exceeded for this API key", headers={"Retry-After": str(wait_s)})
