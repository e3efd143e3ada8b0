"""Audit outputs: JSONL of every report, a CSV with a row per author, the HTML report, a summary JSON.

Caveats first: each file is written to a temporary name and renamed, so a kill never leaves a
half-written output; outputs are always rebuilt from the checkpoint, in archive order, so every
article appears exactly once however many runs it took.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from service.audit import report_html
from service.audit.checkpoint import ItemResult
from service.audit.rollup import Rollup, totals


@dataclass(frozen=True)
class OutputPaths:
    jsonl: Path
    authors_csv: Path
    html: Path
    summary: Path

    @classmethod
    def for_out(cls, out: Path) -> OutputPaths:
        """``--out x.jsonl``: reports there, the rest beside it (``x.authors.csv`` ...); else ``out`` is a folder."""
        if out.suffix.lower() == ".jsonl":
            stem = out.with_suffix("")
            return cls(out, Path(f"{stem}.authors.csv"), Path(f"{stem}.report.html"), Path(f"{stem}.summary.json"))
        return cls(out / "reports.jsonl", out / "authors.csv", out / "report.html", out / "summary.json")


@contextmanager
def _atomic(path: Path) -> Iterator[TextIO]:
    """A file written under a temporary name, synced and renamed into place on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def _atomic_write(path: Path, text: str) -> None:
    with _atomic(path) as fh:
        fh.write(text)


CSV_COLUMNS = ("author", "flagged", "reasons", "articles", "checked", "errors", "likely_ai", "share_likely_ai",
               "mean_text_probability", "max_text_probability", "headshot_verdicts", "headshot_reused_with",
               "first_published", "last_published", "energy_j", "text_inferences", "image_inferences")


def _csv_value(value: Any) -> Any:
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if isinstance(value, dict):
        return ";".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def authors_csv_text(authors: Sequence[dict[str, Any]]) -> str:
    from io import StringIO

    buf = StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for author in authors:
        writer.writerow([_csv_value(author[c]) for c in CSV_COLUMNS])
    return buf.getvalue()


def write_outputs(paths: OutputPaths, meta: dict[str, Any], results: Iterable[ItemResult],
                  phash_max_distance: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One pass over the results (in archive order): JSONL, roll-up and chart data; then CSV, HTML, summary.

    Returns ``(summary, authors)``.
    """
    rollup, charts = Rollup(phash_max_distance), report_html.ChartData()
    with _atomic(paths.jsonl) as fh:
        for result in results:
            fh.write(json.dumps(result.output_row(), ensure_ascii=False) + "\n")
            rollup.add(result)
            charts.add(result)
    authors = rollup.authors()
    summary = totals(authors)
    _atomic_write(paths.authors_csv, authors_csv_text(authors))
    _atomic_write(paths.html, report_html.render(meta, summary, authors, charts))
    _atomic_write(paths.summary, json.dumps({**meta, "summary": summary, "authors": authors}, indent=2))
    return summary, authors
