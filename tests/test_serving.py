"""``bylinecheck serve --workers N``: the shared listening socket keeps TCP_NODELAY on accepted connections."""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
from multiprocessing import reduction
from typing import Any

import pytest
import uvicorn

from service import cli, serving


def _config() -> uvicorn.Config:
    return uvicorn.Config("service.api.asgi:app", host="127.0.0.1", port=0, workers=2)


def _accepted_nodelay(listener: socket.socket) -> int:
    """TCP_NODELAY of a connection that asyncio's server accepts on ``listener`` (as a uvicorn worker does)."""

    async def probe() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
            value = await asyncio.wait_for(seen, 10)
            writer.close()
            return value

    return asyncio.run(probe())


def test_listener_is_tcp_and_accepted_connections_get_nodelay() -> None:
    listener = serving.tcp_listener(_config())
    try:
        assert listener.proto == socket.IPPROTO_TCP
        assert listener.get_inheritable()
        assert _accepted_nodelay(listener) == 1
    finally:
        listener.close()


def test_the_label_survives_the_hand_over_to_worker_processes() -> None:
    """uvicorn's supervisor passes the socket to each worker through multiprocessing's pickler."""
    listener = serving.tcp_listener(_config())
    try:
        restored = pickle.loads(reduction.ForkingPickler.dumps(listener))
        try:
            assert restored.proto == socket.IPPROTO_TCP
            assert restored.getsockname() == listener.getsockname()
            assert _accepted_nodelay(restored) == 1
        finally:
            restored.close()
    finally:
        listener.close()


def test_serve_with_workers_hands_uvicorn_the_tcp_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    handed: list[socket.socket] = []
    monkeypatch.delenv(serving.SPREAD_ENV, raising=False)  # restored after the test

    class Supervisor:
        def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
            assert config.workers == 2
            assert os.environ[serving.SPREAD_ENV] == "2"  # what the spawned workers' Settings will read
            handed.extend(sockets)

        def run(self) -> None:
            return None

    monkeypatch.setattr("uvicorn.supervisors.Multiprocess", Supervisor)
    monkeypatch.setattr(cli, "_settings", _settings_with_port_zero)
    cli.serve(host="127.0.0.1", port=None, workers=2)
    assert len(handed) == 1
    try:
        assert handed[0].proto == socket.IPPROTO_TCP
    finally:
        handed[0].close()


def test_serve_with_workers_keeps_an_operators_spread_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(serving.SPREAD_ENV, "0")

    class Supervisor:
        def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
            assert os.environ[serving.SPREAD_ENV] == "0"
            sockets[0].close()

        def run(self) -> None:
            return None

    monkeypatch.setattr("uvicorn.supervisors.Multiprocess", Supervisor)
    monkeypatch.setattr(cli, "_settings", _settings_with_port_zero)
    cli.serve(host="127.0.0.1", port=None, workers=2)


def _settings_with_port_zero() -> Any:
    from service.config import Settings

    return Settings(port=0)
