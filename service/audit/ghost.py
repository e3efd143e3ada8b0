"""Ghost JSON exports (Ghost Admin → Labs → Export): posts, users and the posts_authors join.

Caveats first: the export is one JSON document, so it is loaded whole (Ghost exports are text
only and rarely large). The primary author (lowest ``sort_order``) is the byline; older exports
with ``author_id`` on the post work too. ``profile_image`` becomes the author's headshot URL when
it is absolute (``__GHOST_URL__`` paths cannot be fetched without the site's address).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from service.audit.articles import html_to_text


def _data(document: Any) -> dict[str, Any]:
    if isinstance(document, dict) and isinstance(document.get("db"), list) and document["db"]:
        document = document["db"][0]
    data = document.get("data") if isinstance(document, dict) else None
    if isinstance(data, dict):
        return data
    raise ValueError("not a Ghost export (no db[0].data)")


def _primary_authors(data: dict[str, Any]) -> dict[str, str]:
    links = sorted(data.get("posts_authors") or [], key=lambda link: link.get("sort_order") or 0)
    primary: dict[str, str] = {}
    for link in links:
        primary.setdefault(str(link.get("post_id")), str(link.get("author_id")))
    return primary


def _row(post: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    image = user.get("profile_image") or ""
    return {
        "id": post.get("uuid") or post.get("id"),
        "title": post.get("title"),
        "text": post.get("plaintext") or html_to_text(post.get("html")),
        "byline": user.get("name"),
        "bio": user.get("bio"),
        "published": post.get("published_at") or post.get("created_at"),
        "author_headshots": [image] if image.startswith(("https://", "http://")) else [],
    }


def read_ghost(path: Path) -> Iterator[dict[str, Any]]:
    """Rows in the JSONL schema, for posts of type ``post`` (pages are skipped)."""
    try:
        data = _data(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, UnicodeDecodeError) as exc:
        yield {"id": f"{path.name}:unreadable", "_error": f"Ghost export could not be read: {exc}"}
        return
    users = {str(u.get("id")): u for u in data.get("users") or []}
    primary = _primary_authors(data)
    for post in data.get("posts") or []:
        if (post.get("type") or "post") != "post":
            continue
        author_id = primary.get(str(post.get("id"))) or str(post.get("author_id"))
        yield _row(post, users.get(author_id, {}))
