"""Routes for archive audits: upload an archive (runs in the background), follow it, read its report."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from service.api.auth import require
from service.audit.background import report_path, start_audit
from service.audit.checkpoint import AuditInfo, AuditLog, AuditStatus
from service.audit.readers import ArchiveFormat
from service.domain import Scope
from service.errors import InvalidRequestError, NotFoundError
from service.store.repository import ApiKeyInfo

router = APIRouter(prefix="/v1", tags=["audits"])
AuditId = Annotated[str, Path(pattern=r"^aud_[0-9a-f]{24}$")]

_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["archive"],
    "properties": {"archive": {"type": "string", "format": "binary", "description": "WXR, Ghost JSON, JSONL or CSV"},
                   "format": {"type": "string", "enum": [f.value for f in ArchiveFormat]}}}}}}}


class AuditStatusResponse(BaseModel):
    id: str
    status: str = Field(description="running | done | failed | interrupted")
    input: str
    format: str
    total: int | None = Field(description="Articles in the archive (null until counted)")
    done: int
    progress: float | None = Field(description="done / total, 0 to 1")
    created_at: datetime
    updated_at: datetime
    summary: dict[str, Any] | None = None
    error: str | None = None
    report_url: str | None = None


def _response(info: AuditInfo) -> AuditStatusResponse:
    done = info.status == AuditStatus.DONE
    return AuditStatusResponse(
        id=info.id, status=info.status, input=info.input_name, format=info.format, total=info.total, done=info.done,
        progress=round(info.done / info.total, 4) if info.total else None, created_at=info.created_at,
        updated_at=info.updated_at, summary=info.summary, error=info.error,
        report_url=f"/v1/audits/{info.id}/report.html" if done else None)


def _visible(request: Request, audit_id: str, key: ApiKeyInfo) -> AuditInfo:
    info = AuditLog(request.app.state.store).get(audit_id)
    if info is None or (info.api_key_id != key.id and Scope.ADMIN not in key.scopes):
        raise NotFoundError(f"no audit {audit_id}")
    return info


@router.post("/audits", response_model=AuditStatusResponse, status_code=202, openapi_extra=_BODY,
             summary="Upload an archive and audit it in the background")
async def create_audit(request: Request, key: Annotated[ApiKeyInfo, Depends(require(Scope.AUDIT))]) -> Any:
    state = request.app.state
    async with request.form(max_files=1, max_fields=4, max_part_size=state.settings.max_request_bytes) as form:
        upload, fmt = form.get("archive"), form.get("format", "auto")
        if not isinstance(upload, UploadFile) or not isinstance(fmt, str) or fmt not in set(ArchiveFormat):
            raise InvalidRequestError("send the archive as the multipart file field 'archive' (format: auto|wxr|ghost|jsonl|csv)")
        if getattr(state, "audit_tasks", None) is None:
            state.audit_tasks = set()
        audit_id = await start_audit(state.settings, state.store, state.pipeline, upload.file, upload.filename,
                                     ArchiveFormat(fmt), key.id, state.audit_tasks)
    return _response(_visible(request, audit_id, key))


@router.get("/audits/{audit_id}", response_model=AuditStatusResponse, summary="Progress, summary and report link")
async def get_audit(audit_id: AuditId, request: Request, key: Annotated[ApiKeyInfo, Depends(require(Scope.AUDIT))]) -> Any:
    return _response(await asyncio.to_thread(_visible, request, audit_id, key))


@router.get("/audits/{audit_id}/report.html", response_class=HTMLResponse, summary="The self-contained HTML report")
async def get_audit_report(audit_id: AuditId, request: Request,
                           key: Annotated[ApiKeyInfo, Depends(require(Scope.AUDIT))]) -> Any:
    info = await asyncio.to_thread(_visible, request, audit_id, key)
    path = report_path(request.app.state.settings, info.id)
    if info.status != AuditStatus.DONE or not path.exists():
        raise NotFoundError(f"audit {audit_id} has no report yet (status {info.status})")
    return HTMLResponse(await asyncio.to_thread(path.read_text, encoding="utf-8"))
