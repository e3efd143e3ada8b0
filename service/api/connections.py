"""Closing a busy worker's keep-alive connections, so that load spreads over the worker processes (ASGI middleware).

Caveats first: with ``bylinecheck serve --workers N`` the processes share one listening socket, and the kernel
gives each new connection to whichever process accepts it first; a keep-alive connection then stays with that
process for every later request. Eight clients on two processes split 4/4 only about a quarter of the time
(3/5 or worse otherwise, binomially), and the busier process's checks queue behind each other while the other
process has spare CPU (benchmarks/NOTES.md, round 12). This middleware asks the client to reconnect
(``Connection: close`` on the response) when the process is busy but not saturated: at least ``busy_in_flight``
and at most ``saturated_in_flight`` HTTP requests in flight here, this one included. A busy process's event loop is
also the slower one to accept, so the next connection tends to land on the less loaded process. Above
``saturated_in_flight`` connections stay open: every process is then saturated, a random split of many clients is
already close to even, and reconnecting only reorders the queue (at concurrency 32 on 2 cores, spreading without
that cap raised p99 by ~26% in 8 of 8 rounds with the same throughput). The price is one TCP connection per
request under load (~0.1-0.3 ms of CPU on each side on loopback; more for clients that speak TLS to the service
directly). A lone client is never asked to reconnect. Requests are counted per app (per worker process), not
across processes.
"""

from __future__ import annotations

from typing import Any

CLOSE = (b"connection", b"close")


class SpreadBusyConnectionsMiddleware:
    """Adds ``Connection: close`` to responses started while ``busy_in_flight`` to ``saturated_in_flight`` requests
    (inclusive) are in flight in this app (``busy_in_flight`` 0 = never). ``in_flight`` counts HTTP requests from
    call to return."""

    def __init__(self, app: Any, busy_in_flight: int, saturated_in_flight: int = 8) -> None:
        if busy_in_flight < 0:
            raise ValueError("busy_in_flight must be >= 0")
        if saturated_in_flight < busy_in_flight:
            raise ValueError("saturated_in_flight must be >= busy_in_flight")
        self.app = app
        self.busy_in_flight = busy_in_flight
        self.saturated_in_flight = saturated_in_flight
        self.in_flight = 0
        self.closed = 0  # responses sent with Connection: close by this middleware

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.busy_in_flight:
            await self.app(scope, receive, send)
            return

        async def send_closing_when_busy(message: Any) -> None:
            if message["type"] == "http.response.start" \
                    and self.busy_in_flight <= self.in_flight <= self.saturated_in_flight:
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"connection" for name, _ in headers):
                    message = {**message, "headers": [*headers, CLOSE]}
                    self.closed += 1
            await send(message)

        self.in_flight += 1
        try:
            await self.app(scope, receive, send_closing_when_busy)
        finally:
            self.in_flight -= 1
