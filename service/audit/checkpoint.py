"""The audit's checkpoint in the store: the ``audits`` row and one ``audit_items`` row per finished article.

Caveats first: an item is recorded only after its check is stored, and each check carries the
idempotency key :func:`idempotency_key`, so a process killed between the two re-reads the stored
report on the next run instead of checking again. Items that failed for a passing reason
(``RETRYABLE``) are checked again on the next run and their row replaced. The item keeps a copy of
the report, so outputs can be rebuilt even when the checks ran against another database (a cluster).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select

from service.store import Store
from service.store.audit_models import AuditItemRow, AuditRow

RETRYABLE = frozenset({"overloaded", "deadline_exceeded", "unavailable", "headshot_fetch_failed", "internal_error"})


class AuditStatus:
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


def idempotency_key(audit_id: str, item_key: str) -> str:
    return f"audit:{audit_id}:{item_key}"[:200]


@dataclass(frozen=True)
class ItemResult:
    """One finished article: its report (with ``check_id``), or an error code and message."""

    seq: int
    key: str
    article_id: str
    byline: str | None
    published: str | None
    report: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None

    def output_row(self) -> dict[str, Any]:
        """The JSONL row: the report with the archive's ``id`` (or an ``error`` object)."""
        if self.report is None:
            row: dict[str, Any] = {"id": self.article_id, "error": {"code": self.error_code, "message": self.error_message}}
            if self.byline:
                row["byline"] = self.byline
        else:
            row = {**self.report, "check_id": self.report["id"], "id": self.article_id}
        if self.published:
            row["published"] = self.published
        return row


@dataclass(frozen=True)
class AuditInfo:
    id: str
    status: str
    source: str
    input_name: str
    format: str
    total: int | None
    done: int
    out_dir: str | None
    created_at: datetime
    updated_at: datetime
    summary: dict[str, Any] | None
    error: str | None
    api_key_id: str | None


def _info(row: AuditRow) -> AuditInfo:
    return AuditInfo(row.id, row.status, row.source, row.input_name, row.format, row.total, row.done, row.out_dir,
                     _aware(row.created_at), _aware(row.updated_at), row.summary, row.error, row.api_key_id)


def _aware(value: datetime) -> datetime:
    """SQLite gives naive datetimes back; every stored time is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _now() -> datetime:
    return datetime.now(UTC)


class AuditLog:
    """Reads and writes the checkpoint through the store's sessions."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def open(self, audit_id: str, *, source: str, input_name: str, input_sha256: str, fmt: str,
             out_dir: str | None, api_key_id: str | None = None) -> AuditInfo:
        """Create the audit, or return the existing one (marked running again) to resume it."""
        with self.store.session() as session:
            row = session.get(AuditRow, audit_id)
            if row is None:
                row = AuditRow(id=audit_id, created_at=_now(), updated_at=_now(), source=source, input_name=input_name,
                               input_sha256=input_sha256, format=fmt, status=AuditStatus.RUNNING, total=None, done=0,
                               out_dir=out_dir, api_key_id=api_key_id)
                session.add(row)
            else:
                row.status, row.updated_at, row.error = AuditStatus.RUNNING, _now(), None
                row.out_dir = out_dir or row.out_dir
            session.flush()
            return _info(row)

    def get(self, audit_id: str) -> AuditInfo | None:
        with self.store.session() as session:
            row = session.get(AuditRow, audit_id)
            return None if row is None else _info(row)

    def finished_keys(self, audit_id: str) -> set[str]:
        """Keys of items that need no further work (retryable failures excluded)."""
        query = select(AuditItemRow.item_key, AuditItemRow.error_code).where(AuditItemRow.audit_id == audit_id)
        with self.store.session() as session:
            return {key for key, code in session.execute(query) if code not in RETRYABLE}

    def record(self, audit_id: str, result: ItemResult) -> None:
        """Checkpoint one article (replacing an earlier retryable failure) and bump the done count."""
        with self.store.session() as session:
            replaced = session.execute(delete(AuditItemRow).where(AuditItemRow.audit_id == audit_id,
                                                                  AuditItemRow.item_key == result.key))
            session.add(AuditItemRow(
                audit_id=audit_id, seq=result.seq, item_key=result.key, article_id=result.article_id[:300],
                byline=result.byline, published=result.published, check_id=result.report["id"] if result.report else None,
                report=result.report, error_code=result.error_code, error_message=result.error_message,
                finished_at=_now()))
            row = session.get(AuditRow, audit_id)
            if row is not None:
                row.done += 0 if getattr(replaced, "rowcount", 0) else 1
                row.updated_at = _now()

    def update(self, audit_id: str, **fields: Any) -> None:
        with self.store.session() as session:
            row = session.get(AuditRow, audit_id)
            if row is None:
                return
            for name, value in fields.items():
                setattr(row, name, value)
            row.updated_at = _now()

    def results(self, audit_id: str) -> Iterator[ItemResult]:
        """Every checkpointed article in archive order, with its stored report."""
        query = (select(AuditItemRow).where(AuditItemRow.audit_id == audit_id).order_by(AuditItemRow.seq)
                 .execution_options(yield_per=500))
        with self.store.session() as session:
            for item in session.scalars(query):
                yield ItemResult(item.seq, item.item_key, item.article_id, item.byline, item.published,
                                 item.report, item.error_code, item.error_message)

