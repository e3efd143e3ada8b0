"""Security headers on every HTTP response (ASGI middleware).

Caveats first: FastAPI's own ``/docs`` and ``/redoc`` pages load Swagger UI / ReDoc from a CDN and run an
inline script, so those two paths get a looser policy naming that CDN; the self-contained audit report
(``/v1/audits/{id}/report.html``) carries its CSS inline, so it may use inline styles but run no script and
load nothing. Every other response, the editors' page included, gets the strict policy (same-origin scripts
and styles only, images also from ``blob:`` and ``data:``, no framing). Responses rendered by Starlette's
outermost error middleware (an unhandled 500) are not seen here. CORS stays off: no ``Access-Control-*`` header is ever added.
"""

from __future__ import annotations

import re
from typing import Any

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; style-src 'self' 'unsafe-inline' "
    "https://cdn.jsdelivr.net https://fonts.googleapis.com; font-src https://fonts.gstatic.com; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCUMENT_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
_SELF_CONTAINED_DOCUMENT = re.compile(r"^/v1/audits/[^/]+/report\.html$")
PERMISSIONS_POLICY = (
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), serial=(), bluetooth=(), "
    "accelerometer=(), gyroscope=(), magnetometer=(), display-capture=(), fullscreen=(self)"
)


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    """The headers for a response to ``path``, as ASGI byte pairs."""
    csp = (DOCS_CONTENT_SECURITY_POLICY if path in DOCS_PATHS
           else DOCUMENT_CONTENT_SECURITY_POLICY if _SELF_CONTAINED_DOCUMENT.match(path)
           else CONTENT_SECURITY_POLICY)
    headers = {
        "content-security-policy": csp,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
        "permissions-policy": PERMISSIONS_POLICY,
        "cross-origin-opener-policy": "same-origin",
        "cross-origin-resource-policy": "same-origin",
    }
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


class SecurityHeadersMiddleware:
    """Adds :func:`security_headers` to each ``http.response.start``, replacing same-named headers."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope.get("path", ""))
        names = {name for name, _ in extra}

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)
