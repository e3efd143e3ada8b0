"""Webhook persistence on the shared :class:`~service.store.Store` engine: jobs, subscribers, outbox, log.

Caveats first: an event is inserted before we answer 202 and ``(source, event_id)`` is unique, so a
replay finds the first job instead of making a second. Claiming a job is a compare-and-set that leases
it (a duplicate task finds the lease and waits for it to run out; a crashed worker's lease expires).
Finishing a job and creating its callbacks is one transaction; so is recording a delivery attempt and
the outbox row's new state. Outbox rows are leased the same way, so two workers never send the same
callback at the same time.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.store import Store
from service.webhooks.payloads import Article
from service.webhooks.rows import DeliveryLogRow, OutboxRow, SubscriberRow, WebhookJobRow

OPEN_JOB_STATES = ("queued", "running", "failed")


@dataclass(frozen=True)
class Job:
    id: str
    source: str
    event_id: str
    event_type: str
    article: Article
    status: str
    attempts: int
    report_id: str | None
    error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "event_id": self.event_id, "event_type": self.event_type,
                "external_id": self.article.external_id, "status": self.status, "attempts": self.attempts,
                "report_id": self.report_id, "error": self.error,
                "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
                "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat()}


@dataclass(frozen=True)
class Delivery:
    """A leased outbox row with what is needed to send it."""

    id: str
    event_type: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    subscriber_id: str
    url: str
    secret: str
    active: bool


@dataclass(frozen=True)
class Claim:
    """``job`` when this worker got it; else ``held_until`` when another worker holds its lease."""

    job: Job | None
    held_until: datetime | None = None


@dataclass(frozen=True)
class Pending:
    """An open piece of work and when it may run (``None`` = now)."""

    id: str
    not_before: datetime | None


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back; every stored time is UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _latest(*times: datetime | None) -> datetime | None:
    present = [t for t in times if t is not None]
    return max(present) if present else None


def new_id(prefix: str) -> str:
    return f"{prefix}_{int(now().timestamp() * 1000):013x}{secrets.token_hex(8)}"


def _job(row: WebhookJobRow) -> Job:
    return Job(row.id, row.source, row.event_id, row.event_type, Article.from_json(row.article), row.status,
               row.attempts, row.report_id, row.error, aware(row.next_attempt_at), aware(row.created_at) or now(),
               aware(row.updated_at) or now())


class WebhookStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    # Jobs -------------------------------------------------------------------------------------

    def create_job(self, source: str, event_id: str, article: Article) -> tuple[Job, bool]:
        """Insert the event as a queued job; on a replay return the existing job and ``False``."""
        at = now()
        row = WebhookJobRow(id=new_id("job"), source=source, event_id=event_id, event_type=article.event_type[:60],
                            article=article.as_json(), status="queued", attempts=0, created_at=at, updated_at=at)
        try:
            with self.store.session() as session:
                session.add(row)
        except IntegrityError:
            with self.store.session() as session:
                existing = session.scalar(select(WebhookJobRow).where(WebhookJobRow.source == source,
                                                                      WebhookJobRow.event_id == event_id))
                if existing is None:
                    raise
                return _job(existing), False
        return _job(row), True

    def get_job(self, job_id: str) -> Job | None:
        with self.store.session() as session:
            row = session.get(WebhookJobRow, job_id)
            return None if row is None else _job(row)

    def claim_job(self, job_id: str, lease_s: float) -> Claim:
        """Atomically mark an open, unleased job running for ``lease_s`` seconds and count the attempt."""
        at = now()
        claimable = or_(WebhookJobRow.status.in_(("queued", "failed")),
                        and_(WebhookJobRow.status == "running",
                             or_(WebhookJobRow.lease_until.is_(None), WebhookJobRow.lease_until < at)))
        with self.store.session() as session:
            taken = session.execute(
                update(WebhookJobRow).where(WebhookJobRow.id == job_id, claimable)
                .values(status="running", attempts=WebhookJobRow.attempts + 1,
                        lease_until=at + timedelta(seconds=lease_s), updated_at=at))
            row = session.get(WebhookJobRow, job_id)
            if row is None:
                return Claim(None)
            session.refresh(row)
            if getattr(taken, "rowcount", 0) == 1:
                return Claim(_job(row))
            return Claim(None, aware(row.lease_until) if row.status == "running" else None)

    def finish_job(self, job_id: str, *, report_id: str | None, error: str | None, event_type: str,
                   payload: dict[str, Any]) -> list[str]:
        """Job done (report) or dead (error), and its callbacks, in one transaction. Returns outbox ids."""
        with self.store.session() as session:
            row = session.get(WebhookJobRow, job_id)
            if row is None:
                return []
            row.status = "done" if report_id else "dead"
            row.report_id, row.error, row.next_attempt_at, row.updated_at = report_id, error, None, now()
            row.lease_until = None
            return self._add_outbox(session, f"job:{job_id}", event_type, payload, None)

    def retry_job(self, job_id: str, error: str, at: datetime) -> None:
        with self.store.session() as session:
            row = session.get(WebhookJobRow, job_id)
            if row is not None and row.status == "running":
                row.status, row.error, row.next_attempt_at, row.updated_at = "failed", error, at, now()
                row.lease_until = None

    def open_jobs(self) -> list[Pending]:
        with self.store.session() as session:
            rows = session.execute(select(WebhookJobRow.id, WebhookJobRow.next_attempt_at, WebhookJobRow.lease_until)
                                   .where(WebhookJobRow.status.in_(OPEN_JOB_STATES))).all()
            return [Pending(job_id, _latest(aware(at), aware(lease))) for job_id, at, lease in rows]

    # Subscribers and outbox -------------------------------------------------------------------

    def create_subscriber(self, url: str, secret: str) -> str:
        sub_id = new_id("sub")
        with self.store.session() as session:
            session.add(SubscriberRow(id=sub_id, url=url, secret=secret, active=True, created_at=now()))
        return sub_id

    def subscriber(self, sub_id: str) -> tuple[str, bool, str | None] | None:
        """``(url, active, disabled_reason)``."""
        with self.store.session() as session:
            row = session.get(SubscriberRow, sub_id)
            return None if row is None else (row.url, row.active, row.disabled_reason)

    def add_test_event(self, subscriber_id: str | None, payload: dict[str, Any]) -> list[str]:
        with self.store.session() as session:
            return self._add_outbox(session, new_id("test"), "webhook.test", payload, subscriber_id)

    def _add_outbox(self, session: Session, event_key: str, event_type: str, payload: dict[str, Any],
                    subscriber_id: str | None) -> list[str]:
        query = select(SubscriberRow.id).where(SubscriberRow.active.is_(True))
        if subscriber_id is not None:
            query = query.where(SubscriberRow.id == subscriber_id)
        done = set(session.scalars(select(OutboxRow.subscriber_id).where(OutboxRow.event_key == event_key)).all())
        ids = []
        for sub_id in session.scalars(query).all():
            if sub_id in done:
                continue
            row = OutboxRow(id=new_id("msg"), event_key=event_key, subscriber_id=sub_id, event_type=event_type,
                            payload=payload, status="pending", attempts=0, created_at=now())
            session.add(row)
            ids.append(row.id)
        return ids

    def pending_outbox(self) -> list[Pending]:
        with self.store.session() as session:
            rows = session.execute(select(OutboxRow.id, OutboxRow.next_attempt_at, OutboxRow.lease_until)
                                   .where(OutboxRow.status == "pending")).all()
            return [Pending(i, _latest(aware(at), aware(lease))) for i, at, lease in rows]

    def lease_delivery(self, outbox_id: str, lease_s: float) -> Delivery | None:
        """Take the row for ``lease_s`` seconds if it is pending and not leased; ``None`` otherwise."""
        at = now()
        with self.store.session() as session:
            taken = session.execute(
                update(OutboxRow).where(OutboxRow.id == outbox_id, OutboxRow.status == "pending",
                                        or_(OutboxRow.lease_until.is_(None), OutboxRow.lease_until < at))
                .values(lease_until=at + timedelta(seconds=lease_s)))
            if getattr(taken, "rowcount", 0) != 1:
                return None
            row = session.get(OutboxRow, outbox_id)
            sub = session.get(SubscriberRow, row.subscriber_id) if row else None
            if row is None or sub is None:
                return None
            return Delivery(row.id, row.event_type, row.payload, row.attempts, aware(row.created_at) or at,
                            sub.id, sub.url, sub.secret, sub.active)

    def record_delivery(self, outbox_id: str, *, status: str, status_code: int | None, error: str | None,
                        duration_s: float, retry_at: datetime | None = None) -> None:
        """Log the attempt and set the row's state (sent | pending | dead | disabled) in one transaction."""
        at = now()
        with self.store.session() as session:
            row = session.get(OutboxRow, outbox_id)
            if row is None:
                return
            session.add(DeliveryLogRow(outbox_id=outbox_id, attempted_at=at, status_code=status_code,
                                       error=(error or "")[:300] or None, duration_s=duration_s))
            row.status, row.attempts, row.last_status_code = status, row.attempts + 1, status_code
            row.next_attempt_at, row.lease_until = retry_at, None
            row.sent_at = at if status == "sent" else row.sent_at
            if status == "disabled":
                sub = session.get(SubscriberRow, row.subscriber_id)
                if sub is not None:
                    sub.active, sub.disabled_reason = False, f"callback answered {status_code} Gone"

    def outbox_states(self, ids: Sequence[str]) -> dict[str, str]:
        with self.store.session() as session:
            rows = session.execute(select(OutboxRow.id, OutboxRow.status).where(OutboxRow.id.in_(list(ids)))).all()
            return {row.id: row.status for row in rows}
