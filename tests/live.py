"""Real servers on 127.0.0.1 for the reliability tests: uvicorn in a thread, or in a child process.

The child process runs :func:`create_fake_app` (``uvicorn --factory tests.live:create_fake_app``): the real
app, store and batcher with the fake *forward passes* of :mod:`tests.fakes`, settings from ``BYLINECHECK_*``.
With ``BYLINECHECK_LIVE_DETECTORS=shipped`` it uses the detectors built from ``weights/`` instead;
``BYLINECHECK_FAKE_FORWARD_DELAY_S`` slows the fake text forward pass (to kill the server mid-batch).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from service.api import create_app
from service.config import Settings
from tests.fakes import FakeFaceDetector, FakeTextDetector

REPO = Path(__file__).resolve().parents[1]


def create_fake_app() -> FastAPI:
    """App factory for a child uvicorn: settings from the environment, fake forward passes unless told."""
    settings = Settings()
    if os.environ.get("BYLINECHECK_LIVE_DETECTORS") == "shipped":
        return create_app(settings)
    delay_s = float(os.environ.get("BYLINECHECK_FAKE_FORWARD_DELAY_S", "0"))
    return create_app(settings, detectors={"text": FakeTextDetector(forward_delay_s=delay_s), "face": FakeFaceDetector()})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(app: FastAPI, **config: object) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread; yields its base URL. ``config`` goes to ``uvicorn.Config``."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", **config))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@dataclass
class ChildServer:
    """A uvicorn child process; ``kill()`` is SIGKILL (no shutdown, no cleanup)."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=20)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def rss_bytes(self) -> int:
        """Resident set size from ``/proc`` (Linux)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


def start_child(env: Mapping[str, str], log: Path, *, port: int | None = None,
                extra_args: tuple[str, ...] = ()) -> ChildServer:
    """Start ``uvicorn --factory tests.live:create_fake_app`` and wait for ``/healthz``."""
    port = port or free_port()
    args = [sys.executable, "-m", "uvicorn", "--factory", "tests.live:create_fake_app", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", *extra_args]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    with log.open("ab") as fh:
        process = subprocess.Popen(args, cwd=REPO, env=full_env, stdout=fh, stderr=subprocess.STDOUT)
    server = ChildServer(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(server.url + "/readyz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"server did not become ready: {log.read_text()[-2000:]}")
        time.sleep(0.1)
