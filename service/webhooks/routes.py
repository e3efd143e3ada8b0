"""Webhook routes: inbound CMS events, job status, callback subscribers and test events."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from service.api.auth import require
from service.domain import Scope
from service.store.repository import ApiKeyInfo
from service.webhooks.schemas import JobOut, ReceiptOut, SubscriberIn, SubscriberOut, TestEventIn, TestEventOut
from service.webhooks.service import WebhookService

router = APIRouter(prefix="/v1", tags=["webhooks"])


def _service(request: Request) -> WebhookService:
    service: WebhookService = request.app.state.webhooks
    return service


@router.post("/webhooks/subscribers", response_model=SubscriberOut, status_code=201)
async def add_subscriber(body: SubscriberIn, request: Request,
                         _key: Annotated[ApiKeyInfo, Depends(require(Scope.ADMIN))]) -> Any:
    sub_id, secret = await asyncio.to_thread(_service(request).add_subscriber, body.url)
    return {"id": sub_id, "url": body.url, "secret": secret}


@router.post("/webhooks/test", response_model=TestEventOut, status_code=202)
async def send_test(body: TestEventIn, request: Request,
                    _key: Annotated[ApiKeyInfo, Depends(require(Scope.ADMIN))]) -> Any:
    return {"deliveries": await asyncio.to_thread(_service(request).send_test, body.subscriber_id)}


@router.post("/webhooks/{source}", response_model=ReceiptOut, status_code=202,
             responses={200: {"model": ReceiptOut, "description": "a replay: the existing job, not re-run"}},
             summary="Receive a signed CMS event (ghost, wordpress, standard)")
async def receive(source: str, request: Request) -> JSONResponse:
    body = await request.body()
    receipt = await asyncio.to_thread(_service(request).receive, source, request.headers, body)
    out = ReceiptOut(job=JobOut(**receipt.job.as_json()), duplicate=not receipt.created)
    return JSONResponse(out.model_dump(mode="json"), status_code=202 if receipt.created else 200)


@router.get("/jobs/{job_id}", response_model=JobOut)
async def get_job(job_id: str, request: Request, _key: Annotated[ApiKeyInfo, Depends(require(Scope.CHECK))]) -> Any:
    job = await asyncio.to_thread(_service(request).job, job_id)
    return job.as_json()
