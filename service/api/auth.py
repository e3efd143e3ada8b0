"""API-key authentication (``Authorization: Bearer bck_...``) with scopes."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from service.domain import Scope
from service.errors import AuthError, ForbiddenError
from service.store.repository import ApiKeyInfo


def require(scope: Scope) -> Callable[[Request], ApiKeyInfo]:
    """A dependency that returns the caller's key or raises 401 / 403."""

    def dependency(request: Request) -> ApiKeyInfo:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("missing API key: send Authorization: Bearer <key>",
                            headers={"WWW-Authenticate": "Bearer"})
        info: ApiKeyInfo | None = request.app.state.store.verify_api_key(token.strip())
        if info is None:
            raise AuthError("invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        if scope not in info.scopes and Scope.ADMIN not in info.scopes:
            raise ForbiddenError(f"this key lacks the '{scope.value}' scope")
        request.app.state.rate_limiter.take(info.id)
        return info

    return dependency
