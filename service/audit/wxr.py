"""WordPress WXR exports, streamed with defusedxml (no DTDs, no entity expansion, no external fetches).

Caveats first: elements are cleared as soon as an ``<item>`` ends, so memory stays flat on large
exports; authors (``<wp:author>``) are expected before the items, as WordPress writes them. Only
posts (``wp:post_type`` ``post``) that are not trashed or auto-drafts become articles. A headshot URL
may come from a post meta key (``headshot_url``, ``author_headshot``, ``byline_headshot``) or an
``author_avatar`` / ``author_headshot`` element inside ``<wp:author>`` (a URL, or a path relative to
the export file).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, iterparse

from service.audit.articles import html_to_text

_HEADSHOT_META = {"headshot_url", "author_headshot", "byline_headshot"}
_AUTHOR_HEADSHOT = {"author_avatar", "author_headshot"}
_SKIPPED_STATUS = {"trash", "auto-draft", "inherit"}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(elem: Element) -> dict[str, str]:
    """Text of direct children by local name (the first of each name)."""
    found: dict[str, str] = {}
    for child in elem:
        found.setdefault(_local(child.tag), (child.text or "").strip())
    return found


def _meta(elem: Element) -> dict[str, str]:
    meta: dict[str, str] = {}
    for child in elem:
        if _local(child.tag) == "postmeta":
            fields = _children(child)
            meta[fields.get("meta_key", "")] = fields.get("meta_value", "")
    return meta


def _content(elem: Element) -> str | None:
    for child in elem:
        if child.tag == "{http://purl.org/rss/1.0/modules/content/}encoded":
            return child.text
    return None


def _author(elem: Element) -> tuple[str, dict[str, Any]]:
    fields = _children(elem)
    urls = [fields[k] for k in _AUTHOR_HEADSHOT if fields.get(k)]
    return fields.get("author_login", ""), {"name": fields.get("author_display_name") or fields.get("author_login"),
                                            "headshot_urls": urls}


def _row(elem: Element, authors: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    fields = _children(elem)
    if fields.get("post_type", "post") != "post" or fields.get("status", "") in _SKIPPED_STATUS:
        return None
    login = fields.get("creator", "")
    author = authors.get(login, {"name": login or None, "headshot_urls": []})
    meta = _meta(elem)
    published = fields.get("post_date_gmt") or fields.get("pubDate") or fields.get("post_date")
    return {
        "id": fields.get("post_id") or fields.get("guid") or fields.get("link"),
        "title": fields.get("title"),
        "text": html_to_text(_content(elem)),
        "byline": author["name"],
        "published": published,
        "headshot_urls": [meta[k] for k in sorted(_HEADSHOT_META) if meta.get(k)],
        "author_headshots": author["headshot_urls"],
    }


def read_wxr(path: Path) -> Iterator[dict[str, Any]]:
    """Rows in the JSONL schema. A malformed or hostile file (or one declaring an unknown encoding) yields one
    ``_error`` row and stops."""
    authors: dict[str, dict[str, Any]] = {}
    channel: Element | None = None
    try:
        for event, elem in iterparse(str(path), events=("start", "end"), forbid_dtd=True):
            name = _local(elem.tag)
            if event == "start":
                channel = elem if name == "channel" else channel
                continue
            if name == "author" and elem.tag.startswith("{http://wordpress.org/export/"):
                login, author = _author(elem)
                authors[login] = author
                _drop(channel, elem)
            elif name == "item":
                row = _row(elem, authors)
                _drop(channel, elem)
                if row is not None:
                    yield row
    except (ParseError, DefusedXmlException, LookupError) as exc:  # LookupError: an unknown declared encoding
        yield {"id": f"{path.name}:unreadable", "_error": f"WXR could not be read: {type(exc).__name__}"}


def _drop(channel: Element | None, elem: Element) -> None:
    """Free a finished element: clear it and detach it from the channel, so memory stays flat."""
    elem.clear()
    if channel is not None and len(channel) and channel[-1] is elem:
        del channel[-1]
