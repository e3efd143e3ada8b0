"""Where an audit finds headshots: paths in the archive rows, a folder, a mapping file, or URLs.

Caveats first: an author's headshot (from the folder, the mapping file or an author-level URL) is
attached to that author's *first* article in the archive only, so each face is checked once per
author, not once per article; re-use across authors is then found by the pipeline and the roll-up.
A URL that is not allow-listed is skipped (logged once per host), never fetched. Paths named *in
the archive* must stay inside the archive's folder (an uploaded archive cannot read server files);
the folder and mapping file given by the operator are trusted.

- folder: ``jane-doe.jpg`` (slug of the byline; ``.jpg``, ``.jpeg``, ``.png``, ``.webp``)
- mapping file: CSV with ``byline,headshot`` columns, or JSON ``{"Jane Doe": "path/or/url"}``;
  paths are relative to the mapping file.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import unicodedata
from pathlib import Path
from urllib.parse import urlsplit

from service.audit.articles import Article
from service.audit.fetch import HeadshotFetcher, HeadshotUrlRefusedError
from service.domain import HeadshotUpload
from service.store.repository import byline_key

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")


def _is_url(value: str) -> bool:
    return value.startswith(("https://", "http://"))


def load_mapping(path: Path) -> dict[str, str]:
    """byline key → path (absolute) or URL, from a folder or a mapping file."""
    if path.is_dir():
        return {slug(p.stem): str(p.resolve()) for p in sorted(path.iterdir())
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}
    if path.suffix.lower() == ".json":
        raw = json.loads(path.read_text(encoding="utf-8"))
        pairs = list(raw.items()) if isinstance(raw, dict) else []
    else:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            pairs = [(r.get("byline", ""), r.get("headshot", "")) for r in csv.DictReader(fh)]
    mapping = {}
    for name, target in pairs:
        if name and target:
            mapping[slug(str(name))] = str(target) if _is_url(str(target)) else str((path.parent / str(target)).resolve())
    return mapping


class HeadshotSource:
    """Builds the uploads for an article. ``read`` raises OSError or HeadshotFetchError."""

    def __init__(self, archive_dir: Path, location: Path | None = None, fetcher: HeadshotFetcher | None = None) -> None:
        self.archive_dir = archive_dir
        self.mapping = load_mapping(location) if location is not None else {}
        self.fetcher = fetcher
        self._warned_hosts: set[str] = set()
        self._seen_authors: set[str] = set()

    def is_first_for_author(self, article: Article) -> bool:
        """True once per byline, in reading order (call it for every article, done or not)."""
        key = byline_key(article.byline) or ""
        if key in self._seen_authors:
            return False
        self._seen_authors.add(key)
        return True

    def references(self, article: Article, first_for_author: bool) -> list[str]:
        """Absolute paths and URLs; raises OSError for an archive path outside the archive's folder."""
        refs = [self._inside_archive(p) for p in article.headshot_paths] + list(article.headshot_urls)
        if first_for_author and article.byline:
            mapped = self.mapping.get(slug(article.byline))
            if mapped:
                refs.append(mapped)
            else:
                refs.extend(r if _is_url(r) else self._inside_archive(r) for r in article.author_headshots)
        return refs

    def _inside_archive(self, relative: str) -> str:
        root = self.archive_dir.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root):
            raise PermissionError(f"headshot path {relative!r} is outside the archive's folder")
        return str(path)

    def read(self, refs: list[str]) -> tuple[HeadshotUpload, ...]:
        uploads = []
        for ref in refs:
            if not _is_url(ref):
                uploads.append(HeadshotUpload(data=Path(ref).read_bytes(), filename=Path(ref).name))
                continue
            data = self._fetch(ref)
            if data is not None:
                uploads.append(HeadshotUpload(data=data, filename=Path(urlsplit(ref).path).name or None))
        return tuple(uploads)

    def _fetch(self, url: str) -> bytes | None:
        host = urlsplit(url).hostname or ""
        if self.fetcher is None:
            self._warn(host, "no headshot hosts are allow-listed (BYLINECHECK_FETCH_ALLOW_HOSTS)")
            return None
        try:
            return self.fetcher.fetch(url)
        except HeadshotUrlRefusedError as exc:
            self._warn(host, exc.message)
            return None

    def _warn(self, host: str, why: str) -> None:
        if host not in self._warned_hosts:
            self._warned_hosts.add(host)
            logger.warning("skipping headshot URLs on %s: %s", host, why)
