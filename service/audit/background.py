"""Audits started over HTTP: the upload is saved under ``settings.audit_dir/<id>/`` and audited in the
background on the app's own pipeline.

Caveats first: the task runs in the server process; if the server stops mid-audit the audit is
left ``interrupted`` or ``failed`` with its checkpoint intact. A failure is logged and recorded on
the audit row, never lost. Task references are kept in ``tasks`` so they are not garbage-collected.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from pathlib import Path
from typing import IO, Any

from service.audit.outputs import OutputPaths
from service.audit.readers import ArchiveFormat
from service.audit.runs import AuditOptions, AuditRun, default_fetcher, new_audit_id
from service.config import Settings
from service.pipeline import Pipeline
from service.store import Store

logger = logging.getLogger(__name__)


def safe_name(filename: str | None) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename or "archive").name).lstrip(".")
    return name[:100] or "archive"


def audit_folder(settings: Settings, audit_id: str) -> Path:
    return settings.audit_dir / audit_id


async def start_audit(settings: Settings, store: Store, pipeline: Pipeline, upload: IO[bytes], filename: str | None,
                      fmt: ArchiveFormat, api_key_id: str | None, tasks: set[asyncio.Task[Any]]) -> str:
    """Save the upload, open the audit row, start the background run. Returns the audit id."""
    audit_id = new_audit_id()
    folder = audit_folder(settings, audit_id)
    archive = folder / safe_name(filename)

    def save() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with archive.open("wb") as fh:
            shutil.copyfileobj(upload, fh)

    await asyncio.to_thread(save)
    fetcher = default_fetcher(settings)
    run = AuditRun(settings, store, archive, OutputPaths.for_out(folder / "out"),
                   AuditOptions(fmt=fmt, concurrency=settings.audit_concurrency), audit_id=audit_id, source="api",
                   api_key_id=api_key_id, fetcher=fetcher)
    await run.prepare()

    async def execute() -> None:
        try:
            await run.execute(pipeline)
        except Exception:
            logger.exception("audit %s failed", audit_id)
        finally:
            if fetcher is not None:
                fetcher.close()

    task = asyncio.create_task(execute(), name=f"audit-{audit_id}")
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return audit_id


def report_path(settings: Settings, audit_id: str) -> Path:
    return OutputPaths.for_out(audit_folder(settings, audit_id) / "out").html
