"""The service's own CPU per check: the part of a worker process's CPU time that no detector part bills.

Caveats first: this is an apportioned *estimate*, not a per-check measurement. The event loop (HTTP parsing,
multipart, routing, report assembly), the store's writes, the reuse look-up and the thread hand-offs serve every
check in flight at once, so their CPU cannot be timed per check. The meter reads the process's CPU time
(``time.process_time``: all its threads) over *busy periods* (at least one check in flight), subtracts the CPU
already billed to the finished checks' parts, and keeps an exponential moving average per finished check. Idle CPU
(between busy periods: background threads, metrics scrapes) is not billed to any check. Requests refused while a
check is in flight (4xx) and replays add their CPU to the next finished check's window. A lone check's window is
exactly its own life, so at low load the estimate is that check's own unbilled CPU (plus whatever else the process
did meanwhile). One meter per process: two pipelines in one process (tests) read the same process clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

OVERHEAD_PART = "service-overhead"


class Window:
    """One check's place in the meter: closed once, by ``finish`` or ``abandon`` (the second call is a no-op)."""

    __slots__ = ("closed",)

    def __init__(self) -> None:
        self.closed = False


class OverheadMeter:
    """Process CPU not billed to any detector part, per finished check (seconds, smoothed).

    ``begin()`` when a check starts; then ``finish(window, billed_cpu_s)`` (returns the estimate to report for that
    check) or ``abandon(window)`` (refused, replayed or failed; a no-op after ``finish``). Thread-safe.
    """

    def __init__(self, smoothing: float = 0.2, clock: Callable[[], float] = time.process_time) -> None:
        if not 0.0 < smoothing <= 1.0:
            raise ValueError("smoothing must be in (0, 1]")
        self._smoothing = smoothing
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight = 0
        self._mark = 0.0  # process CPU at the start of the current window (set when a busy period starts)
        self._average: float | None = None

    @property
    def average_s(self) -> float | None:
        """The current smoothed estimate, or None before the first finished check."""
        with self._lock:
            return self._average

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def begin(self) -> Window:
        with self._lock:
            if self._in_flight == 0:
                self._mark = self._clock()
            self._in_flight += 1
        return Window()

    def abandon(self, window: Window) -> None:
        with self._lock:
            if not window.closed:
                window.closed = True
                self._in_flight -= 1

    def finish(self, window: Window, billed_cpu_s: float) -> float:
        """Close this check's window: the process CPU since the window opened minus ``billed_cpu_s`` (the CPU
        seconds this check's parts already report), folded into the average. Returns the average (>= 0)."""
        with self._lock:
            now = self._clock()
            if not window.closed:
                window.closed = True
                self._in_flight -= 1
                unbilled = (now - self._mark) - billed_cpu_s
                self._mark = now
                if self._average is None:
                    self._average = unbilled
                else:
                    self._average += self._smoothing * (unbilled - self._average)
            return max(0.0, self._average or 0.0)
