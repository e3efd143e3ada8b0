"""A lean HTTP/1.1 load-generator client for the benchmarks: requests are encoded once, before the clock starts.

Caveats first: it speaks only what the benchmark needs: one keep-alive connection per simulated client,
``Content-Length`` bodies (the service sends no chunked responses on these routes; anything else raises), no
TLS, no redirects. Why it exists: the client shares the benchmark machine's two cores with the service, and
httpx's per-request machinery cost ~6-8 ms of CPU per check in the round-7 runs, CPU the service then could not
use. Request bodies are encoded by httpx itself (:func:`encode_request`), so the multipart bytes are what an httpx
client sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx


@dataclass(frozen=True)
class RawResponse:
    status_code: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def encode_request(base: str, path: str, *, headers: dict[str, str], files: list[Any] | None = None,
                   data: dict[str, str] | None = None) -> bytes:
    """The whole HTTP/1.1 request (line, headers, body): httpx's own multipart body and content headers, the given
    headers, ``Host`` and keep-alive (none of httpx.Client's defaults such as User-Agent or Accept-Encoding)."""
    request = httpx.Request("POST", base + path, headers=headers, files=files, data=data)
    body = request.read()
    split = urlsplit(base)
    lines = [f"POST {path} HTTP/1.1", f"Host: {split.netloc}", "Connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in request.headers.items() if name.lower() not in ("host", "connection")]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class RawConnection:
    """One keep-alive connection; :meth:`send` writes prepared bytes and reads one response."""

    def __init__(self, base: str, timeout_s: float = 120.0) -> None:
        self.timeout_s = timeout_s
        split = urlsplit(base)
        if split.scheme != "http" or split.hostname is None or split.port is None:
            raise ValueError(f"only http://host:port bases are supported, got {base!r}")
        self._host, self._port = split.hostname, split.port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes) -> RawResponse:
        """Write ``request`` and read its response; TimeoutError (connection closed) after ``timeout_s``."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._exchange(request)
        except TimeoutError:
            await self.close()
            raise

    async def _exchange(self, request: bytes) -> RawResponse:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        self._writer.write(request)
        await self._writer.drain()
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            await self.close()
            raise RuntimeError(f"response without Content-Length (status {status}); this client reads no other framing")
        body = await self._reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return RawResponse(status, headers, body)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None
