"""Outbound HTTP that cannot be pointed at our own network: headshot downloads and callbacks.

Caveats first: the host name is resolved once, *every* address is checked, and the request then goes
to that checked address (Host header and TLS SNI keep the name), so DNS rebinding between check and
connect does not help. Refused: loopback, private (RFC 1918, ULA), link-local (incl. the cloud metadata
address 169.254.169.254), CGNAT, multicast, reserved and unspecified addresses, unless the host is in
``settings.private_allow_hosts`` or ``settings.allow_private_fetch`` is set. Redirects are not followed.
Raises :class:`UnsafeUrlError` or :class:`FetchRefusedError` (4xx; never worth a retry) or
:class:`FetchError` (timeouts, size, 5xx: worth a retry).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from service.config import Settings
from service.webhooks.errors import FetchError, FetchRefusedError, UnsafeUrlError

_CGNAT = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True)
class Target:
    """A URL whose host resolved to ``address``, which passed the checks."""

    url: str
    scheme: str
    host: str
    port: int
    address: str

    def pinned_url(self) -> httpx.URL:
        return httpx.URL(self.url).copy_with(host=self.address, port=self.port)


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):  # an IPv4 address inside (mapped, 6to4, Teredo) is what is reached
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        ip = embedded if embedded is not None else ip
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
                or ip.is_unspecified or (ip.version == 4 and ip in _CGNAT))


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise FetchError(f"cannot resolve {host}") from None
    return sorted({str(info[4][0]) for info in infos})


def check_url(url: str, settings: Settings, *, allow_hosts: Sequence[str] | None = None) -> Target:
    """Validate scheme, host allow-list (when given) and resolved addresses. Blocking (DNS)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in {"http", "https"} or not host or parts.username or parts.password:
        raise UnsafeUrlError("only http(s) URLs with a host and no credentials are allowed")
    if allow_hosts is not None and host not in {h.lower() for h in allow_hosts}:
        raise UnsafeUrlError(f"host {host} is not in the allow-list")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _resolve(host, port)
    private_ok = settings.allow_private_fetch or host in {h.lower() for h in settings.private_allow_hosts}
    if not private_ok and not all(is_public(a) for a in addresses):
        raise UnsafeUrlError(f"host {host} resolves to a private, loopback or link-local address")
    return Target(url=url, scheme=parts.scheme, host=host, port=port, address=addresses[0])


def _request(target: Target, method: str, *, content: bytes | None = None,
             headers: dict[str, str] | None = None) -> httpx.Request:
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    return httpx.Request(method, target.pinned_url(), content=content,
                         headers={**(headers or {}), "host": host_header},
                         extensions={"sni_hostname": target.host})


def fetch_bytes(url: str, settings: Settings, *, max_bytes: int) -> bytes:
    """GET an allow-listed URL: at most ``max_bytes`` bytes, ``settings.fetch_timeout_s`` per phase and overall."""
    target = check_url(url, settings, allow_hosts=settings.fetch_allow_hosts)
    deadline = time.monotonic() + settings.fetch_timeout_s
    try:
        with httpx.Client(timeout=settings.fetch_timeout_s, follow_redirects=False) as client:
            response = client.send(_request(target, "GET"), stream=True)
            try:
                if 400 <= response.status_code < 500:
                    raise FetchRefusedError(f"headshot URL answered {response.status_code}")
                if response.status_code != 200:
                    raise FetchError(f"headshot URL answered {response.status_code}")
                data = bytearray()
                for chunk in response.iter_bytes():
                    data.extend(chunk)
                    if len(data) > max_bytes:
                        raise FetchError(f"headshot is larger than {max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise FetchError("headshot download took too long")
                return bytes(data)
            finally:
                response.close()
    except httpx.HTTPError as exc:
        raise FetchError(f"headshot fetch failed: {type(exc).__name__}") from None


def post_json(url: str, settings: Settings, body: bytes, headers: dict[str, str]) -> int:
    """POST a callback; returns the status code. Raises :class:`FetchError` on transport errors."""
    target = check_url(url, settings)
    request = _request(target, "POST", content=body, headers={**headers, "content-type": "application/json",
                                                                 "user-agent": "bylinecheck-webhooks/0.1"})
    try:
        with httpx.Client(timeout=settings.callback_timeout_s, follow_redirects=False) as client:
            return client.send(request).status_code
    except httpx.HTTPError as exc:
        raise FetchError(f"callback failed: {type(exc).__name__}") from None
