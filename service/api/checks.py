"""Routes for checks: submit (multipart or JSON), fetch one, list by byline."""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from service.api.auth import require
from service.domain import CheckRequest, HeadshotUpload, Scope
from service.errors import InvalidRequestError, NotFoundError, UnsupportedImageError
from service.inputs import decode_text
from service.schemas import CheckJson, Report, ReportPage
from service.store.repository import ApiKeyInfo

router = APIRouter(prefix="/v1", tags=["checks"])

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string", "description": "Article text (UTF-8), or a text file"},
                        "byline": {"type": "string"},
                        "bio": {"type": "string"},
                        "headshots": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    },
                },
            },
            "application/json": {
                "schema": {"$ref": "#/components/schemas/CheckJson"},
                "example": {"text": "The council voted on Tuesday to ...", "byline": "Jane Doe", "headshots": []},
            },
        },
    },
}


async def _from_multipart(request: Request) -> CheckRequest:
    settings = request.app.state.settings
    async with request.form(max_files=settings.max_headshots + 2, max_fields=20,
                            max_part_size=settings.max_text_chars * 4 + 1024) as form:
        text_field = form.get("text")
        if isinstance(text_field, UploadFile):
            text: str | None = decode_text(await text_field.read(settings.max_text_chars * 4 + 1))
        else:
            text = text_field
        uploads = []
        for item in form.getlist("headshots"):
            if not isinstance(item, UploadFile):
                raise UnsupportedImageError("headshots must be uploaded files")
            uploads.append(HeadshotUpload(data=await item.read(settings.max_image_bytes + 1), filename=item.filename))
        return CheckRequest(text=text, byline=_str(form.get("byline")), bio=_str(form.get("bio")),
                            headshots=tuple(uploads))


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidRequestError("byline and bio must be plain form fields")


async def _from_json(request: Request) -> CheckRequest:
    try:
        body = CheckJson.model_validate_json(await request.body())
    except ValidationError as exc:
        raise InvalidRequestError(f"invalid JSON body: {exc.errors()[0].get('msg', '')}") from None
    uploads = []
    for h in body.headshots:
        try:
            uploads.append(HeadshotUpload(data=base64.b64decode(h.data, validate=True), filename=h.filename))
        except (binascii.Error, ValueError):
            raise InvalidRequestError("headshot data is not valid base64") from None
    return CheckRequest(text=body.text, byline=body.byline, bio=body.bio, headshots=tuple(uploads))


async def parse_check(request: Request) -> CheckRequest:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        parsed = await _from_multipart(request)
    elif content_type == "application/json":
        parsed = await _from_json(request)
    else:
        raise InvalidRequestError("send multipart/form-data or application/json")
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 200:
        raise InvalidRequestError("Idempotency-Key must be 1 to 200 characters")
    return CheckRequest(text=parsed.text, byline=parsed.byline, bio=parsed.bio, headshots=parsed.headshots,
                        idempotency_key=key)


@router.post("/checks", response_model=Report, status_code=200, openapi_extra=_BODY,
             summary="Check an article and its byline's headshots")
async def create_check(request: Request, key: Annotated[ApiKeyInfo, Depends(require(Scope.CHECK))]) -> Any:
    check = await parse_check(request)
    return await request.app.state.pipeline.check(check, api_key_id=key.id)


@router.get("/checks/{check_id}", response_model=Report)
async def get_check(check_id: str, request: Request,
                    _key: Annotated[ApiKeyInfo, Depends(require(Scope.CHECK))]) -> Any:
    report = await asyncio.to_thread(request.app.state.store.get_check, check_id)
    if report is None:
        raise NotFoundError(f"no check {check_id}")
    return report


@router.get("/checks", response_model=ReportPage)
async def list_checks(
    request: Request,
    _key: Annotated[ApiKeyInfo, Depends(require(Scope.CHECK))],
    byline: Annotated[str | None, Query(max_length=300)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Any:
    items, next_cursor = await asyncio.to_thread(request.app.state.store.list_checks, byline, limit, cursor)
    return {"items": items, "next_cursor": next_cursor}
