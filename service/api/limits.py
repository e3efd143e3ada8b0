"""ASGI middleware bounding request bodies in size and in time, whether or not Content-Length is sent.

Caveats first: uvicorn has no read timeout for a request body, so a client trickling its body would hold
a connection (and a worker's memory) forever; here each wait for the next chunk is bounded by
``idle_timeout_s`` and the whole body by ``deadline_s``, after which the answer is 408 ``request_timeout``
(413 ``request_too_large`` past ``max_bytes``). Once the body is complete, ``receive`` is passed through
untouched (the app may wait on it for ``http.disconnect``).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from service.errors import RequestTimeoutError, RequestTooLargeError

Scope = dict[str, Any]


class BodyLimitMiddleware:
    def __init__(self, app: Any, max_bytes: int, idle_timeout_s: float = 15.0, deadline_s: float = 120.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.idle_timeout_s = idle_timeout_s
        self.deadline_s = deadline_s

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _reject(send, 413, "request_too_large", "request body too large")
            return
        seen = 0
        complete = False
        started = False
        deadline = time.monotonic() + self.deadline_s

        async def limited_receive() -> Any:
            nonlocal seen, complete
            if complete:
                return await receive()
            wait_s = min(self.idle_timeout_s, deadline - time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), timeout=max(wait_s, 0.0))
            except TimeoutError:
                raise RequestTimeoutError("the request body was not received in time") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if seen > self.max_bytes:
                    raise RequestTooLargeError(f"request body exceeds {self.max_bytes} bytes")
            else:
                complete = True
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except RequestTooLargeError:
            if not started:
                await _reject(send, 413, "request_too_large", "request body too large")
        except RequestTimeoutError:
            if not started:
                await _reject(send, 408, "request_timeout", "the request body was not received in time")


async def _reject(send: Any, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
