"""Fetch headshot URLs named in an archive, through the service's guarded outbound HTTP.

Caveats first: the checks are those of :func:`service.webhooks.fetch.check_url`: http(s) only, the host
must be on ``settings.fetch_allow_hosts`` (the one allow-list for headshot downloads), every address it
resolves to must be public (unless ``settings.private_allow_hosts`` / ``allow_private_fetch`` say
otherwise), and the request goes to the checked address (DNS rebinding does not help). Redirects are
not followed; a body past ``settings.max_image_bytes`` is cut off. A refused URL (not allow-listed,
private, or a 4xx answer) is skipped by the caller; a failed one (timeout, 5xx) is worth a retry.
"""

from __future__ import annotations

import time

import httpx

from service.config import Settings
from service.errors import ServiceError
from service.webhooks.errors import FetchError, UnsafeUrlError
from service.webhooks.fetch import Target, check_url


class HeadshotFetchError(ServiceError):
    status_code = 502
    code = "headshot_fetch_failed"


class HeadshotUrlRefusedError(ServiceError):
    status_code = 422
    code = "headshot_url_refused"


def _pinned_get(target: Target) -> httpx.Request:
    default_port = 443 if target.scheme == "https" else 80
    host = target.host if target.port == default_port else f"{target.host}:{target.port}"
    return httpx.Request("GET", target.pinned_url(), headers={"host": host, "user-agent": "bylinecheck-audit/0.1"},
                         extensions={"sni_hostname": target.host})


class HeadshotFetcher:
    """Synchronous (call it from a worker thread); ``transport`` is for tests. ``close()`` when done."""

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.max_bytes = settings.max_image_bytes
        self._client = httpx.Client(timeout=settings.fetch_timeout_s, follow_redirects=False, transport=transport)

    def close(self) -> None:
        self._client.close()

    def check(self, url: str) -> Target:
        """The checked target; raises HeadshotUrlRefusedError or HeadshotFetchError (DNS)."""
        try:
            return check_url(url, self.settings, allow_hosts=self.settings.fetch_allow_hosts)
        except UnsafeUrlError as exc:
            raise HeadshotUrlRefusedError(exc.message) from None
        except FetchError as exc:
            raise HeadshotFetchError(exc.message) from None

    def fetch(self, url: str) -> bytes:
        """The body of a 200 answer. Raises HeadshotUrlRefusedError or HeadshotFetchError."""
        target = self.check(url)
        deadline = time.monotonic() + self.settings.fetch_timeout_s
        try:
            response = self._client.send(_pinned_get(target), stream=True)
            try:
                return self._body(url, response, deadline)
            finally:
                response.close()
        except httpx.HTTPError as exc:
            raise HeadshotFetchError(f"GET {url} failed: {type(exc).__name__}") from None

    def _body(self, url: str, response: httpx.Response, deadline: float) -> bytes:
        if 400 <= response.status_code < 500:
            raise HeadshotUrlRefusedError(f"GET {url} answered {response.status_code}")
        if response.status_code != 200:
            raise HeadshotFetchError(f"GET {url} answered {response.status_code}")
        body = bytearray()
        for chunk in response.iter_bytes():
            body.extend(chunk)
            if len(body) > self.max_bytes:
                raise HeadshotFetchError(f"headshot at {url} is larger than {self.max_bytes} bytes")
            if time.monotonic() > deadline:
                raise HeadshotFetchError(f"headshot at {url} took too long")
        return bytes(body)
