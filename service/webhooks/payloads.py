"""Turn a verified webhook body into an :class:`Article`: text (HTML stripped), title, byline, headshot.

Caveats first: HTML is read with the standard library's :class:`html.parser.HTMLParser` (no code runs,
``<script>``/``<style>``/``<template>`` contents are dropped, entities are decoded). A headshot is either
uploaded inline (base64) or a URL; URLs are *not* fetched here (the worker fetches them, through
:mod:`service.webhooks.fetch`). Raises :class:`InvalidPayloadError` for anything malformed.

Payloads per source:

- ``ghost``: Ghost's post webhooks, ``{"post": {"current": {"title", "html" | "plaintext",
  "primary_author": {"name", "profile_image"}, ...}}}``.
- ``wordpress``: our plugin (``integrations/wordpress``), ``{"type": "post.publish", "data": {"post":
  {"id", "title", "content", ...}, "author": {"name", "avatar_url", "headshot_url"}}}``.
- ``standard``: ``{"type": ..., "data": {"id", "title", "html" | "text", "byline",
  "headshot": {"data": <base64>, "filename"} | null, "headshot_url"}}``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from service.html_text import html_to_text
from service.webhooks.errors import InvalidPayloadError


@dataclass(frozen=True)
class Article:
    """What the worker checks. ``headshot_b64`` is an inline upload; ``headshot_url`` is fetched later."""

    event_type: str
    text: str | None
    title: str | None = None
    byline: str | None = None
    external_id: str | None = None
    headshot_b64: str | None = None
    headshot_url: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Article:
        def opt(key: str) -> str | None:
            value = data.get(key)
            return None if value is None else str(value)

        return cls(event_type=str(data.get("event_type") or "article"), text=opt("text"), title=opt("title"),
                   byline=opt("byline"), external_id=opt("external_id"), headshot_b64=opt("headshot_b64"),
                   headshot_url=opt("headshot_url"))


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidPayloadError(f"{where} must be a JSON object")
    return value


def _opt_str(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidPayloadError(f"{where} must be a string")
    return value


def _text(html: Any, plain: Any) -> str | None:
    if _opt_str(html, "html") is not None:
        return html_to_text(html) or None
    return _opt_str(plain, "text")


def _inline_headshot(value: Any) -> str | None:
    if value is None:
        return None
    data = _dict(value, "headshot").get("data")
    if not isinstance(data, str):
        raise InvalidPayloadError("headshot.data must be base64")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPayloadError("headshot.data is not valid base64") from None
    return data


def _ghost(body: dict[str, Any]) -> Article:
    post = _dict(_dict(body.get("post"), "post").get("current"), "post.current")
    author = post.get("primary_author") or ((post.get("authors") or [None])[0]) or {}
    author = _dict(author, "post.primary_author")
    return Article(event_type="post." + str(post.get("status") or "changed"),
                   text=_text(post.get("html"), post.get("plaintext")), title=_opt_str(post.get("title"), "title"),
                   byline=_opt_str(author.get("name"), "author name"), external_id=_opt_str(post.get("id"), "post.id"),
                   headshot_url=_opt_str(author.get("profile_image"), "profile_image"))


def _wordpress(body: dict[str, Any]) -> Article:
    data = _dict(body.get("data"), "data")
    post = _dict(data.get("post"), "data.post")
    author = _dict(data.get("author") or {}, "data.author")
    headshot = _opt_str(author.get("headshot_url"), "headshot_url") or _opt_str(author.get("avatar_url"), "avatar_url")
    return Article(event_type=str(body.get("type") or "post.changed"), text=_text(post.get("content"), None),
                   title=_opt_str(post.get("title"), "title"), byline=_opt_str(author.get("name"), "author name"),
                   external_id=str(post["id"]) if post.get("id") is not None else None, headshot_url=headshot)


def _standard(body: dict[str, Any]) -> Article:
    data = _dict(body.get("data"), "data")
    return Article(event_type=str(body.get("type") or "article"), text=_text(data.get("html"), data.get("text")),
                   title=_opt_str(data.get("title"), "title"), byline=_opt_str(data.get("byline"), "byline"),
                   external_id=_opt_str(data.get("id"), "id"), headshot_b64=_inline_headshot(data.get("headshot")),
                   headshot_url=_opt_str(data.get("headshot_url"), "headshot_url"))


EXTRACTORS: Mapping[str, Callable[[dict[str, Any]], Article]] = {
    "ghost": _ghost, "wordpress": _wordpress, "standard": _standard,
}


def extract(source: str, body: bytes) -> Article:
    """Parse a body already verified for ``source``. Raises :class:`InvalidPayloadError`."""
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidPayloadError("body is not valid JSON") from None
    article = EXTRACTORS[source](_dict(parsed, "body"))
    if article.text is None and article.headshot_b64 is None and article.headshot_url is None:
        raise InvalidPayloadError("the payload holds no text and no headshot")
    return article
