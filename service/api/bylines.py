"""An author's page as JSON: their checks, headshots and any reuse of their faces under other names."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from service.api.auth import require
from service.domain import Scope
from service.errors import NotFoundError
from service.schemas import BylineProfile
from service.store.repository import ApiKeyInfo, byline_profile

router = APIRouter(prefix="/v1", tags=["bylines"])


@router.get("/bylines/{name}", response_model=BylineProfile)
async def get_byline(request: Request, name: Annotated[str, Path(min_length=1, max_length=300)],
                     _key: Annotated[ApiKeyInfo, Depends(require(Scope.CHECK))]) -> Any:
    profile = await asyncio.to_thread(byline_profile, request.app.state.store, name)
    if not profile["checks"]:
        raise NotFoundError(f"no checks under the byline {name!r}")
    return profile
