"""Fetch headshot URLs named in an archive: allow-listed hosts only, public addresses only, size-capped.

Caveats first: nothing is fetched unless its host is on ``settings.audit_headshot_hosts`` (exact
host, or ``.example.com`` for any sub-domain). Every address the host resolves to must be a
public one (no loopback, private, link-local, multicast or reserved range), redirects are not
followed, and a body past ``settings.max_image_bytes`` is cut off. The resolution is checked
before the request, so DNS rebinding between check and connect remains a (narrow) caveat.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import httpx

from service.errors import ServiceError

Resolver = Callable[[str], Sequence[str]]


class HeadshotFetchError(ServiceError):
    status_code = 502
    code = "headshot_fetch_failed"


class HeadshotUrlRefusedError(ServiceError):
    status_code = 422
    code = "headshot_url_refused"


def resolve_host(host: str) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)})


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower().rstrip(".")
        if host == entry.lstrip(".") or (entry.startswith(".") and host.endswith(entry)):
            return True
    return False


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local)


class HeadshotFetcher:
    """Synchronous (call it from a worker thread). ``transport``/``resolve`` are for tests."""

    def __init__(self, allowed_hosts: Sequence[str], max_bytes: int, *, timeout_s: float = 10.0,
                 transport: httpx.BaseTransport | None = None, resolve: Resolver = resolve_host) -> None:
        self.allowed_hosts = tuple(allowed_hosts)
        self.max_bytes = max_bytes
        self._resolve = resolve
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False, transport=transport,
                                    headers={"user-agent": "bylinecheck-audit/0.1"})

    def close(self) -> None:
        self._client.close()

    def check_url(self, url: str) -> None:
        """Raises HeadshotUrlRefusedError unless the URL may be fetched."""
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise HeadshotUrlRefusedError("only http(s) URLs with a host are fetched")
        if not host_allowed(parts.hostname, self.allowed_hosts):
            raise HeadshotUrlRefusedError(f"host {parts.hostname} is not on the headshot allow-list")
        try:
            addresses = self._resolve(parts.hostname)
        except OSError as exc:
            raise HeadshotFetchError(f"could not resolve {parts.hostname}: {exc}") from None
        if not addresses or not all(is_public_address(a) for a in addresses):
            raise HeadshotUrlRefusedError(f"host {parts.hostname} resolves to a non-public address")

    def fetch(self, url: str) -> bytes:
        """The body of a 200 response. Raises HeadshotUrlRefusedError or HeadshotFetchError."""
        self.check_url(url)
        try:
            with self._client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise HeadshotFetchError(f"GET {url} answered {response.status_code}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > self.max_bytes:
                        raise HeadshotFetchError(f"headshot at {url} is larger than {self.max_bytes} bytes")
                return bytes(body)
        except httpx.HTTPError as exc:
            raise HeadshotFetchError(f"GET {url} failed: {type(exc).__name__}") from None
