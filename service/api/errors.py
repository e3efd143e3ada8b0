"""The one error handler: every error becomes ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import ServiceError
from service.schemas import ErrorResponse

logger = logging.getLogger(__name__)

# Declared on every operation (OpenAPI status ranges): the one error shape, for 4xx and 5xx alike.
# (The JSON content is spelled out so that routes answering HTML or text on success still declare JSON errors.)
_ERROR_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "content": _ERROR_JSON,
            "description": "Client error: `{\"error\": {\"code\", \"message\"}}`"},
    "5XX": {"model": ErrorResponse, "content": _ERROR_JSON,
            "description": "Server error (503 busy/unavailable, 504 deadline, 507 full)"},
}

_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "request_too_large",
               415: "unsupported_media_type"}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    async def on_service_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)  # noqa: S101 - registered for ServiceError only
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.errors.labels(exc.code).inc()
        return error_response(exc.status_code, exc.code, exc.message, exc.headers)

    async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        where = "; ".join(".".join(str(p) for p in e.get("loc", ())) + ": " + str(e.get("msg", "")) for e in errors[:5])
        return error_response(422, "invalid_request", where or "invalid request")

    async def on_http_error(_request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
        detail = exc.detail if isinstance(exc, StarletteHTTPException) else "error"
        return error_response(status, _HTTP_CODES.get(status, f"http_{status}"), str(detail))

    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled %s", type(exc).__name__, exc_info=exc)
        return error_response(500, "internal_error", "internal error")

    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
