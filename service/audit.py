"""Audit a JSONL file of articles: one report per input row, written as JSONL with the row's ``id``.

Input rows: ``{"id", "text", "byline", "headshots": [paths relative to the input file]}``; any
field may be missing. A row that cannot be checked gets ``{"id", "error": {"code", "message"}}``
instead of a report; nothing stops the run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from service.config import Settings
from service.domain import CheckRequest, HeadshotUpload
from service.errors import ServiceError
from service.pipeline import Pipeline
from service.runner import open_pipeline


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                yield {"id": f"line-{number}", "_error": "invalid JSON"}
                continue
            yield row if isinstance(row, dict) else {"id": f"line-{number}", "_error": "row is not an object"}


def request_for(row: dict[str, Any], base: Path) -> CheckRequest:
    if "_error" in row:
        raise ServiceError(row["_error"])
    uploads = []
    for rel in row.get("headshots") or []:
        path = (base / str(rel)).resolve()
        uploads.append(HeadshotUpload(data=path.read_bytes(), filename=path.name))
    return CheckRequest(text=row.get("text"), byline=row.get("byline"), bio=row.get("bio"),
                        headshots=tuple(uploads), source="audit", external_id=str(row.get("id")))


async def _check_row(pipeline: Pipeline, row: dict[str, Any], base: Path) -> dict[str, Any]:
    try:
        report = await pipeline.check(request_for(row, base))
    except ServiceError as exc:
        return {"id": row.get("id"), "error": {"code": exc.code, "message": exc.message}}
    except OSError as exc:
        return {"id": row.get("id"), "error": {"code": "unreadable_headshot", "message": str(exc)}}
    return {**report, "check_id": report["id"], "id": row.get("id")}


async def run_audit(settings: Settings, input_path: Path, out_path: Path, *, concurrency: int = 8,
                    progress: Callable[[int], None] | None = None) -> int:
    """Check every row; returns the number of rows written. Rows are written in input order."""
    rows = list(read_rows(input_path))
    written = 0
    async with open_pipeline(settings) as pipeline:
        with out_path.open("w", encoding="utf-8") as out:
            for start in range(0, len(rows), concurrency):
                chunk = rows[start:start + concurrency]
                results = await asyncio.gather(*(_check_row(pipeline, r, input_path.parent) for r in chunk))
                for result in results:
                    out.write(json.dumps(result) + "\n")
                    written += 1
                out.flush()
                if progress:
                    progress(len(chunk))
    return written
