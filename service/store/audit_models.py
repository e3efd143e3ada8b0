"""Stored rows of archive audits: one ``audits`` row per run, one ``audit_items`` row per finished article.

An item row is the checkpoint: it is written only after the article's check is stored, and the
check itself is idempotent on ``audit:<audit id>:<item key>``, so a kill at any moment neither loses
nor repeats an article. Changes here need an Alembic migration (``0003_audit``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.store.models import Base


class AuditRow(Base):
    __tablename__ = "audits"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(40))
    input_name: Mapped[str] = mapped_column(String(500))
    input_sha256: Mapped[str] = mapped_column(String(64), index=True)
    format: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    done: Mapped[int] = mapped_column(Integer, default=0)
    out_dir: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    api_key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    summary: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class AuditItemRow(Base):
    __tablename__ = "audit_items"
    __table_args__ = (UniqueConstraint("audit_id", "item_key", name="uq_audit_items_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    audit_id: Mapped[str] = mapped_column(ForeignKey("audits.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    item_key: Mapped[str] = mapped_column(String(300))
    article_id: Mapped[str] = mapped_column(String(300))
    byline: Mapped[str | None] = mapped_column(String(300), nullable=True)
    published: Mapped[str | None] = mapped_column(String(40), nullable=True)
    check_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    report: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(60), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
