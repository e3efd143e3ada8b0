"""What an audit reads: one :class:`Article` per post, whatever the archive format.

Caveats first: ``key`` is the article's id made unique within the archive (a repeated id gets
``#2``, ``#3`` ... in reading order), so the same archive always yields the same keys; the
checkpoint and the idempotency key rest on that. ``published`` is ISO 8601 (UTC) or None.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from service.html_text import html_to_text as visible_text


@dataclass(frozen=True)
class Article:
    key: str
    id: str
    text: str | None
    byline: str | None = None
    bio: str | None = None
    published: str | None = None
    headshot_paths: tuple[str, ...] = ()
    headshot_urls: tuple[str, ...] = ()
    author_headshots: tuple[str, ...] = ()
    read_error: str | None = None


@dataclass
class _KeyRegistry:
    seen: dict[str, int] = field(default_factory=dict)

    def unique(self, article_id: str) -> str:
        count = self.seen.get(article_id, 0) + 1
        self.seen[article_id] = count
        return article_id if count == 1 else f"{article_id}#{count}"


def articles_from_rows(rows: Iterable[dict[str, Any]]) -> Iterator[Article]:
    """Turn normalised rows (the JSONL schema) into articles with unique keys."""
    keys = _KeyRegistry()
    for number, row in enumerate(rows, start=1):
        article_id = str(row.get("id") or f"row-{number}")
        yield Article(
            key=keys.unique(article_id)[:300], id=article_id, text=_str_or_none(row.get("text")),
            byline=_str_or_none(row.get("byline")), bio=_str_or_none(row.get("bio")),
            published=parse_date(row.get("published")),
            headshot_paths=tuple(str(p) for p in row.get("headshots") or ()),
            headshot_urls=tuple(str(u) for u in row.get("headshot_urls") or ()),
            author_headshots=tuple(str(u) for u in row.get("author_headshots") or ()),
            read_error=row.get("_error"),
        )


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


_WP_NO_DATE = {"", "0000-00-00 00:00:00"}


def parse_date(value: Any) -> str | None:
    """ISO 8601, WordPress ``YYYY-MM-DD HH:MM:SS`` or RFC 2822 → ISO 8601 in UTC; None if unreadable."""
    if not isinstance(value, str) or value.strip() in _WP_NO_DATE:
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat()


def html_to_text(markup: str | None) -> str | None:
    """Visible text of a post body (see :mod:`service.html_text`); None when there is none."""
    if markup is None:
        return None
    return visible_text(markup) or None
