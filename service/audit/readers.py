"""Archive formats in: WordPress WXR, Ghost JSON, JSONL and CSV, each yielding rows in the JSONL schema.

Row schema: ``{"id", "text", "byline", "bio", "published", "headshots": [paths relative to the
archive], "headshot_urls": [...], "author_headshots": [URLs or paths, for the author]}``; any field may be missing. A
row that cannot be read carries ``_error`` and becomes an error row in the output, never a crash.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

from service.audit.ghost import read_ghost
from service.audit.wxr import read_wxr


class ArchiveFormat(StrEnum):
    AUTO = "auto"
    WXR = "wxr"
    GHOST = "ghost"
    JSONL = "jsonl"
    CSV = "csv"


def detect_format(path: Path) -> ArchiveFormat:
    """By extension, then by the first bytes (``<`` → WXR, ``{"db"`` → Ghost, ``{`` → JSONL)."""
    suffix = path.suffix.lower()
    by_suffix = {".xml": ArchiveFormat.WXR, ".wxr": ArchiveFormat.WXR, ".jsonl": ArchiveFormat.JSONL,
                 ".ndjson": ArchiveFormat.JSONL, ".csv": ArchiveFormat.CSV}
    if suffix in by_suffix:
        return by_suffix[suffix]
    with path.open("rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return ArchiveFormat.WXR
    if head.startswith(b"{") and b'"db"' in head.split(b"\n", 1)[0][:200]:
        return ArchiveFormat.GHOST
    if head.startswith(b"{"):
        return ArchiveFormat.GHOST if suffix == ".json" and b"\n{" not in head else ArchiveFormat.JSONL
    return ArchiveFormat.CSV


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line.decode("utf-8-sig" if number == 1 else "utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                yield {"id": f"line-{number}", "_error": "invalid JSON or not UTF-8"}
                continue
            yield row if isinstance(row, dict) else {"id": f"line-{number}", "_error": "row is not an object"}


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(";") if part.strip()]


def read_csv(path: Path) -> Iterator[dict[str, Any]]:
    """Columns ``id,text,byline,bio,published,headshots,headshot_urls`` (lists separated by ``;``)."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with path.open(encoding="utf-8-sig", newline="") as fh:
        try:
            for row in csv.DictReader(fh):
                yield {**row, "headshots": _split(row.get("headshots")), "headshot_urls": _split(row.get("headshot_urls")),
                       "author_headshots": _split(row.get("author_headshots"))}
        except (UnicodeDecodeError, csv.Error) as exc:
            yield {"id": f"{path.name}:unreadable", "_error": f"CSV could not be read: {type(exc).__name__}"}


READERS = {ArchiveFormat.WXR: read_wxr, ArchiveFormat.GHOST: read_ghost, ArchiveFormat.JSONL: read_jsonl,
           ArchiveFormat.CSV: read_csv}


def read_rows(path: Path, fmt: ArchiveFormat | str = ArchiveFormat.AUTO) -> Iterator[dict[str, Any]]:
    """Stream the archive's rows in the JSONL schema."""
    chosen = ArchiveFormat(fmt)
    if chosen is ArchiveFormat.AUTO:
        chosen = detect_format(path)
    return READERS[chosen](path)
