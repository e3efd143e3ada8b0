"""Busy worker processes ask clients to reconnect (``Connection: close``), so load spreads over ``--workers N``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from service.api import create_app
from service.api.connections import SpreadBusyConnectionsMiddleware
from service.config import Settings
from tests.servers import free_port, wait_until


async def _slow_or_fast(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/slow`` answers after 0.4 s, anything else at once; ``/own-header`` sets its own Connection header."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(0.4)
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
    if scope["path"] == "/own-header":
        headers.append((b"connection", b"keep-alive"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def served() -> Iterator[tuple[str, SpreadBusyConnectionsMiddleware]]:
    """The middleware around :func:`_slow_or_fast` in a real uvicorn (h11) on a free port."""
    app = SpreadBusyConnectionsMiddleware(_slow_or_fast, busy_in_flight=2)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 20, "uvicorn")
    try:
        yield f"127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(10)


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> dict[str, str]:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: keep-alive\r\n\r\n".encode())
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
    await reader.readexactly(int(headers["content-length"]))
    return headers


async def _beside_a_slow_request(address: str, path: str) -> tuple[dict[str, str], bool, dict[str, str], bool]:
    """``path`` on a second connection while ``/slow`` is in flight on a first: (its headers, whether the server then
    closed its connection, ``/slow``'s headers, whether the first connection still serves a request)."""
    host, port = address.split(":")
    slow = await asyncio.open_connection(host, int(port))
    other = await asyncio.open_connection(host, int(port))
    try:
        slow_answer = asyncio.create_task(_exchange(*slow, "/slow"))
        await asyncio.sleep(0.1)  # /slow is in flight
        headers = await _exchange(*other, path)
        try:  # a closed connection reads EOF at once; an open one has nothing more to say
            closed = await asyncio.wait_for(other[0].read(1), 1.0) == b""
        except TimeoutError:
            closed = False
        slow_headers = await slow_answer
        reused = "connection" not in await _exchange(*slow, "/fast")
        return headers, closed, slow_headers, reused
    finally:
        for _, writer in (slow, other):
            writer.close()


def test_a_response_started_while_another_request_is_in_flight_closes_its_connection(
        served: tuple[str, SpreadBusyConnectionsMiddleware]) -> None:
    headers, closed, slow_headers, reused = asyncio.run(_beside_a_slow_request(served[0], "/fast"))
    assert headers.get("connection") == "close"
    assert closed  # uvicorn closed the connection after the response
    assert "connection" not in slow_headers  # alone when its response started: kept alive
    assert reused  # and usable again
    assert served[1].closed == 1
    # the client can read a response before the server's task returns from the app: wait for the count to drop
    wait_until(lambda: served[1].in_flight == 0, 5, "the in-flight count to return to 0")


def test_an_app_that_sets_its_own_connection_header_keeps_it(
        served: tuple[str, SpreadBusyConnectionsMiddleware]) -> None:
    headers, closed, _, _ = asyncio.run(_beside_a_slow_request(served[0], "/own-header"))
    assert headers.get("connection") == "keep-alive"
    assert not closed
    assert served[1].closed == 0


def _connection_header(busy: int, saturated: int, others_in_flight: int) -> bytes | None:
    """The Connection header the middleware gives a response started with ``others_in_flight`` other requests."""

    async def scenario() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        app = SpreadBusyConnectionsMiddleware(_slow_or_fast, busy_in_flight=busy, saturated_in_flight=saturated)
        app.in_flight = others_in_flight

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app({"type": "http", "path": "/fast"}, None, send)
        assert app.in_flight == others_in_flight
        return sent

    start = asyncio.run(scenario())[0]
    return next((value for name, value in start["headers"] if name == b"connection"), None)


@pytest.mark.parametrize(("busy", "saturated", "others", "expected"), [
    (2, 8, 0, None),  # alone: keep-alive
    (2, 8, 1, b"close"),  # busy
    (2, 8, 7, b"close"),  # 8 in flight: still spreading
    (2, 8, 8, None),  # 9 in flight: saturated, keep-alive
    (0, 8, 5, None),  # 0: never
    (1, 1, 0, b"close"),
])
def test_close_only_between_busy_and_saturated(busy: int, saturated: int, others: int, expected: bytes | None) -> None:
    assert _connection_header(busy, saturated, others) == expected


def test_bad_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="busy_in_flight"):
        SpreadBusyConnectionsMiddleware(_slow_or_fast, busy_in_flight=-1)
    with pytest.raises(ValueError, match="saturated_in_flight"):
        SpreadBusyConnectionsMiddleware(_slow_or_fast, busy_in_flight=3, saturated_in_flight=2)


def test_the_service_app_spreads_busy_connections_from_settings(settings: Settings) -> None:
    """``create_app`` installs the middleware with ``spread_connections_in_flight``: 1 closes even a lone request."""
    for threshold, expected in ((1, "close"), (0, None)):
        app = create_app(settings.model_copy(update={"spread_connections_in_flight": threshold}), detectors={})
        transport = httpx.ASGITransport(app=app)

        async def get(client_app: httpx.ASGITransport = transport) -> httpx.Response:
            async with httpx.AsyncClient(transport=client_app, base_url="http://test") as client:
                return await client.get("/healthz")

        response = asyncio.run(get())
        assert response.status_code == 200
        assert response.headers.get("connection") == expected
