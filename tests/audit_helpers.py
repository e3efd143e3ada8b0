"""Small archives for the audit tests: WXR, Ghost and JSONL built in code, and fake-detector settings."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

HUMAN = "The council met on Tuesday. It voted to repair the bridge on Main Street before winter comes."
AI = "Let us delve into this. We delve deeper. Then we delve again into the rich tapestry of the topic."


def articles(n: int = 6) -> list[dict[str, Any]]:
    """Alternating authors: 'Ann Human' writes human text, 'Bo Bot' and 'Cy Bot' write AI text."""
    names = ["Ann Human", "Bo Bot", "Cy Bot"]
    rows = []
    for i in range(n):
        author = names[i % 3]
        rows.append({"id": f"post-{i}", "byline": author, "text": HUMAN if author == "Ann Human" else AI,
                     "published": f"2023-{1 + i % 12:02d}-1{i % 10}T09:00:00Z"})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_wxr(path: Path, rows: list[dict[str, Any]], avatars: dict[str, str] | None = None) -> Path:
    logins = {r["byline"]: r["byline"].lower().replace(" ", "") for r in rows}
    authors = "".join(
        f"<wp:author><wp:author_login><![CDATA[{login}]]></wp:author_login>"
        f"<wp:author_display_name><![CDATA[{name}]]></wp:author_display_name>"
        + (f"<wp:author_avatar>{escape((avatars or {})[name])}</wp:author_avatar>" if name in (avatars or {}) else "")
        + "</wp:author>" for name, login in logins.items())
    items = "".join(
        f"<item><title>{escape(r['id'])}</title><dc:creator><![CDATA[{logins[r['byline']]}]]></dc:creator>"
        f"<content:encoded><![CDATA[<p>{r['text']}</p>]]></content:encoded><wp:post_id>{escape(r['id'])}</wp:post_id>"
        f"<wp:post_date_gmt>{r['published'][:10]} {r['published'][11:19]}</wp:post_date_gmt>"
        f"<wp:post_type>post</wp:post_type><wp:status>publish</wp:status></item>" for r in rows)
    attachment = "<item><title>logo</title><wp:post_id>999</wp:post_id><wp:post_type>attachment</wp:post_type></item>"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:wp="http://wordpress.org/export/1.2/"><channel>'
        f"<title>Test</title>{authors}{items}{attachment}</channel></rss>", encoding="utf-8")
    return path


def write_ghost(path: Path, rows: list[dict[str, Any]], images: dict[str, str] | None = None) -> Path:
    users = {name: str(i) for i, name in enumerate(sorted({r["byline"] for r in rows}), start=1)}
    posts = [{"id": f"g{i}", "uuid": r["id"], "title": r["id"], "html": f"<p>{escape(r['text'])}</p>", "plaintext": None,
              "type": "post", "status": "published", "published_at": r["published"]} for i, r in enumerate(rows)]
    links = [{"post_id": f"g{i}", "author_id": users[r["byline"]], "sort_order": 0} for i, r in enumerate(rows)]
    document = {"db": [{"meta": {"version": "5.0.0"}, "data": {
        "posts": [*posts, {"id": "page1", "type": "page", "html": "<p>About</p>"}],
        "users": [{"id": uid, "name": name, "slug": name.lower(), "profile_image": (images or {}).get(name)}
                  for name, uid in users.items()],
        "posts_authors": links}}]}
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
