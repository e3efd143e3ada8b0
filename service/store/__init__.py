"""Persistence: SQLAlchemy models, the repository, and migrations (SQLite by default, PostgreSQL by URL)."""

from service.store.repository import Store

__all__ = ["Store"]
