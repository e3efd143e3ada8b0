"""Starting uvicorn: one process, or ``--workers N`` processes sharing a listening socket that keeps TCP_NODELAY.

Caveats first: with ``--workers N`` uvicorn binds the listening socket itself and hands it to the worker
processes; that socket reports ``proto`` 0, accepted connections inherit it, and asyncio only turns on
TCP_NODELAY for sockets that report ``IPPROTO_TCP`` (uvicorn issue #3149, open in 0.54.0). Nagle's algorithm then
holds the second write of every response (Starlette sends headers and body separately) until the client's
delayed ACK, ~40 ms on Linux. Measured here (`bylinecheck serve --workers 2`, 2 cores, loopback): ``/healthz``
42 ms instead of 2.3-2.5 ms, and one check at concurrency 1 ~147 ms instead of ~100 ms. :func:`tcp_listener`
re-wraps uvicorn's socket as ``IPPROTO_TCP`` (same descriptor, address and inheritability), which
``multiprocessing`` preserves when it passes the socket to each worker.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

SPREAD_ENV = "BYLINECHECK_SPREAD_CONNECTIONS_IN_FLIGHT"
WORKERS_SPREAD_IN_FLIGHT = 2


def tcp_listener(config: Any) -> socket.socket:
    """``config.bind_socket()`` (a ``uvicorn.Config``), as an ``IPPROTO_TCP`` socket when it is an unlabelled TCP one."""
    sock: socket.socket = config.bind_socket()
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.proto != 0:
        return sock
    inheritable = sock.get_inheritable()
    wrapped = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    wrapped.set_inheritable(inheritable)
    return wrapped


def run_workers(app: str, host: str, port: int, workers: int) -> None:
    """``uvicorn.run(app, host=..., port=..., workers=...)`` with :func:`tcp_listener`'s socket. Unless the
    environment sets it, the workers get ``BYLINECHECK_SPREAD_CONNECTIONS_IN_FLIGHT=2``: a worker with two or more
    requests in flight asks the client to reconnect, so keep-alive clients do not stay piled on one process
    (``service/api/connections.py``)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    if workers > 1:
        os.environ.setdefault(SPREAD_ENV, str(WORKERS_SPREAD_IN_FLIGHT))  # the spawned workers inherit it
    config = uvicorn.Config(app, host=host, port=port, workers=workers)
    with contextlib.suppress(KeyboardInterrupt):  # the supervisor stops its workers first, as uvicorn.run does
        Multiprocess(config, sockets=[tcp_listener(config)]).run()
