"""Pydantic models at the webhook HTTP edge (separate from the stored rows)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DEAD = "dead"


class JobOut(BaseModel):
    id: str
    source: str
    event_id: str
    event_type: str
    external_id: str | None = None
    status: JobStatus = Field(description="failed = the last attempt failed and a retry is scheduled; dead = gave up")
    attempts: int
    report_id: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class ReceiptOut(BaseModel):
    job: JobOut
    duplicate: bool = Field(description="True when this event id was received before (nothing was re-run)")


class SubscriberIn(BaseModel):
    url: str = Field(max_length=2000, description="http(s) URL; private addresses only when allow-listed")


class SubscriberOut(BaseModel):
    id: str
    url: str
    secret: str = Field(description="whsec_<base64>: verify our callbacks with it (shown once)")


class TestEventIn(BaseModel):
    subscriber_id: str | None = Field(default=None, description="Only this subscriber; default every active one")


class TestEventOut(BaseModel):
    deliveries: list[str] = Field(description="Outbox ids, also the webhook-id header of each callback")
