"""Real servers for tests: PostgreSQL and Redis from Debian packages, and ``bylinecheck`` processes.

Caveats first: nothing here is faked. A missing Debian package is installed with ``apt-get`` when the
run is root (CI is); otherwise the test is skipped with the command to run. Every server listens on a
free loopback port with a temporary data directory, runs in the foreground as a child process (no
daemon is left behind when a test dies) and is stopped by ``stop()`` / the ``with`` block. PostgreSQL
refuses to run as root, so as root it runs as Debian's ``postgres`` user on a directory it owns.

Reusable by any test that needs the deployed topology::

    with PostgresServer.start() as pg, RedisServer.start() as redis:
        env = service_env({"BYLINECHECK_DATABASE_URL": pg.url, "BYLINECHECK_REDIS_URL": redis.url})
        run_cli(["migrate"], env)
        api = ServiceProcess.start(["serve", "--port", str(port)], env, "api")
        api.wait_http(f"http://127.0.0.1:{port}/healthz")
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
APT_TIMEOUT_S = 900.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(ready: Callable[[], bool], timeout_s: float, what: str, log: Path | None = None) -> None:
    """Poll ``ready`` every 0.1 s; fail the test with ``log``'s tail after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    pytest.fail(f"{what} not ready after {timeout_s:.0f} s{log_tail(log)}")


def log_tail(log: Path | None, chars: int = 4000) -> str:
    if log is None or not log.exists():
        return ""
    return f"\n--- {log.name} (tail) ---\n{log.read_text(errors='replace')[-chars:]}"


def ensure_debian_packages(packages: Iterable[str], present: Callable[[], bool]) -> None:
    """Install ``packages`` with apt-get unless ``present()``; skip the test when that is impossible."""
    if present():
        return
    names = " ".join(packages)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"needs Debian packages: sudo apt-get install -y {names}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    if subprocess.run(install, env=env, capture_output=True, timeout=APT_TIMEOUT_S).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=APT_TIMEOUT_S, check=True)
        subprocess.run(install, env=env, capture_output=True, timeout=APT_TIMEOUT_S, check=True)
    if not present():
        pytest.fail(f"installed {names} but still cannot find it")


def postgres_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with ``initdb`` (Debian's layout), or one on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3].split(".")[0]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


class _Server:
    """A child process with a log file and a temporary directory; ``stop()`` ends both."""

    def __init__(self, process: subprocess.Popen[bytes], root: Path, log: Path) -> None:
        self.process = process
        self.root = root
        self.log = log

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def assert_running(self, what: str) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"{what} exited with {self.process.returncode}{log_tail(self.log)}")


def _popen(command: Sequence[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own session with stdout and stderr in ``log`` (the child keeps the file open)."""
    with log.open("wb") as out:
        return subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)


class PostgresServer(_Server):
    """A throwaway PostgreSQL cluster: password auth (scram-sha-256) on 127.0.0.1, fsync off."""

    user = "bylinecheck"
    database = "bylinecheck"

    def __init__(self, process: subprocess.Popen[bytes], root: Path, log: Path, port: int, password: str) -> None:
        super().__init__(process, root, log)
        self.port = port
        self.password = password

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg 3 driver), as ``BYLINECHECK_DATABASE_URL`` takes it."""
        return f"postgresql+psycopg://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    @classmethod
    def start(cls, timeout_s: float = 60.0) -> PostgresServer:
        ensure_debian_packages(["postgresql"], lambda: postgres_bin_dir() is not None)
        bin_dir = postgres_bin_dir()
        assert bin_dir is not None  # ensured above
        root = Path(tempfile.mkdtemp(prefix="bylinecheck-pg-"))
        port, password = free_port(), secrets.token_urlsafe(16)
        (root / "pwfile").write_text(password + "\n")
        owner = _postgres_owner(root)
        run_as: dict[str, Any] = {"user": owner, "group": pwd.getpwnam(owner).pw_gid} if owner else {}
        data = root / "data"
        subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", cls.user, "--pwfile", str(root / "pwfile"),
                        "-A", "scram-sha-256", "-E", "UTF8", "--no-sync", "--no-instructions"],
                       cwd=root, capture_output=True, check=True, timeout=timeout_s, **run_as)
        settings = {"listen_addresses": "'127.0.0.1'", "port": str(port), "unix_socket_directories": f"'{root}'",
                    "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "100",
                    "shared_buffers": "32MB", "timezone": "'Europe/Berlin'"}
        with (data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
        log = root / "postgres.log"
        process = _popen([str(bin_dir / "postgres"), "-D", str(data)], log, cwd=root, **run_as)
        server = cls(process, root, log, port, password)
        try:
            wait_until(server._accepts("postgres"), timeout_s, "PostgreSQL", log)
            server._create_database()
        except BaseException:
            server.stop()
            raise
        return server

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 15.0) -> None:
        """SIGINT is PostgreSQL's "fast" shutdown."""
        super().stop(sig, timeout_s)

    def _accepts(self, database: str) -> Callable[[], bool]:
        import psycopg

        def ready() -> bool:
            self.assert_running("PostgreSQL")
            try:
                psycopg.connect(self.dsn.rsplit("/", 1)[0] + f"/{database}", connect_timeout=2).close()
            except psycopg.OperationalError:
                return False
            return True

        return ready

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')

    def query(self, sql: str) -> list[tuple[object, ...]]:
        return self.query_database(self.database, sql)

    def query_database(self, database: str, sql: str) -> list[tuple[object, ...]]:
        import psycopg

        with psycopg.connect(self.dsn.rsplit("/", 1)[0] + f"/{database}") as conn:
            return list(conn.execute(sql).fetchall())


def _postgres_owner(root: Path) -> str | None:
    """As root, hand ``root`` to Debian's ``postgres`` user (PostgreSQL refuses root); else run as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root without a 'postgres' user to run PostgreSQL as")
    os.chown(root, entry.pw_uid, entry.pw_gid)
    os.chown(root / "pwfile", entry.pw_uid, entry.pw_gid)
    root.chmod(0o700)
    return "postgres"


class RedisServer(_Server):
    """A throwaway Redis: password, no persistence, 127.0.0.1 only."""

    def __init__(self, process: subprocess.Popen[bytes], root: Path, log: Path, port: int, password: str) -> None:
        super().__init__(process, root, log)
        self.port = port
        self.password = password

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, timeout_s: float = 30.0) -> RedisServer:
        ensure_debian_packages(["redis-server"], lambda: shutil.which("redis-server") is not None)
        root = Path(tempfile.mkdtemp(prefix="bylinecheck-redis-"))
        port, password = free_port(), secrets.token_urlsafe(16)
        log = root / "redis.log"
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--daemonize", "no", "--dir", str(root), "--requirepass", password]
        process = _popen(command, log, cwd=root)
        server = cls(process, root, log, port, password)
        try:
            wait_until(server._pings, timeout_s, "Redis", log)
        except BaseException:
            server.stop()
            raise
        return server

    def _pings(self) -> bool:
        import redis

        self.assert_running("Redis")
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=2).ping())
        except redis.ConnectionError:
            return False


def service_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment for a ``bylinecheck`` process: ours minus every inherited ``BYLINECHECK_*``, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINECHECK_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def bylinecheck_command() -> list[str]:
    """The installed ``bylinecheck`` script of this interpreter's environment, else the same CLI from the checkout."""
    script = Path(sys.executable).parent / "bylinecheck"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from service.cli import app; app(prog_name='bylinecheck')"]


def run_cli(args: Sequence[str], env: Mapping[str, str], timeout_s: float = 120.0) -> str:
    """Run ``bylinecheck ARGS`` to completion; return stdout, fail the test (with stderr) on a non-zero exit."""
    done = subprocess.run([*bylinecheck_command(), *args], env=dict(env), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout_s)
    if done.returncode != 0:
        pytest.fail(f"bylinecheck {' '.join(args)} exited {done.returncode}\n{done.stderr[-4000:]}")
    return done.stdout


class ServiceProcess(_Server):
    """A long-running ``bylinecheck`` command (``serve``, ``worker``) in its own process group."""

    def __init__(self, process: subprocess.Popen[bytes], root: Path, log: Path, name: str) -> None:
        super().__init__(process, root, log)
        self.name = name

    @classmethod
    def start(cls, args: Sequence[str], env: Mapping[str, str], name: str) -> ServiceProcess:
        root = Path(tempfile.mkdtemp(prefix=f"bylinecheck-{name}-"))
        log = root / f"{name}.log"
        process = _popen([*bylinecheck_command(), *args], log, env=dict(env), cwd=REPO)
        return cls(process, root, log, name)

    def wait_http(self, url: str, timeout_s: float = 150.0) -> None:
        """Wait until ``url`` answers 200 (use ``/healthz``)."""

        def ready() -> bool:
            self.assert_running(self.name)
            try:
                return httpx.get(url, timeout=2.0).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout_s, self.name, self.log)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def send(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` to the whole process group without waiting (stop several at once, then ``stop()``)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
        """SIGTERM to the whole process group (uvicorn workers, queue threads), then SIGKILL."""
        if self.process.poll() is None:
            self.send(sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout_s)
        # Keep the log directory only while someone may still read it: tests call stop() at teardown.
        shutil.rmtree(self.root, ignore_errors=True)
