"""Archive audit: which of our bylines are fake? Reads WXR, Ghost, JSONL or CSV; resumable; per-author report.

Flow: readers (archive → rows) → articles → headshots (folder, mapping file, allow-listed URLs) →
engine (local or Ray; each article through :class:`~service.pipeline.Pipeline`) → checkpoint
(store: ``audits`` / ``audit_items``) → roll-up per author → outputs (JSONL, CSV, HTML, summary).

The core contract holds: ``run_audit(settings, INPUT.jsonl, OUT.jsonl)`` writes one row per input
row, the row's report with the row's ``id`` (or ``{"id", "error": {"code", "message"}}``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from service.audit.fetch import HeadshotFetcher
from service.audit.outputs import OutputPaths
from service.audit.readers import ArchiveFormat, read_rows
from service.audit.runs import AuditOptions, AuditRun, Detectors, EngineName, Progress, default_fetcher
from service.config import Settings
from service.runner import open_pipeline
from service.store import Store

__all__ = ["ArchiveFormat", "AuditOptions", "AuditRun", "EngineName", "OutputPaths", "Progress", "read_rows", "run_audit"]


async def run_audit(settings: Settings, input_path: Path, out_path: Path, *, concurrency: int = 16,
                    progress: Progress | Callable[[int], None] | None = None, options: AuditOptions | None = None,
                    detectors: Detectors | None = None, fetcher: HeadshotFetcher | None = None) -> int:
    """Audit an archive to ``out_path`` (a ``.jsonl`` file, or a folder); returns the number of rows written.

    ``progress`` is a :class:`Progress`, or (as before) a callable advanced by the number of finished rows.
    ``detectors`` (a mapping, or a zero-argument factory for the Ray engine) replaces the detectors built
    from the weights; ``fetcher`` replaces the one built from ``settings.fetch_allow_hosts`` (the caller
    closes it). Raises what the engine raises; the checkpoint keeps every finished article.
    """
    options = options or AuditOptions(concurrency=concurrency)
    if progress is not None and not isinstance(progress, Progress):
        progress = Progress(advance=progress)
    store = Store(settings.database_url, settings.secret_key.get_secret_value())
    store.migrate()
    own_fetcher = fetcher is None
    fetcher = fetcher or default_fetcher(settings)
    try:
        run = AuditRun(settings, store, input_path, OutputPaths.for_out(out_path), options,
                       detectors=detectors, fetcher=fetcher)
        if options.engine is EngineName.RAY:
            summary = await run.execute(None, progress)
        else:
            factory = run.factory
            async with open_pipeline(settings, store=store, detectors=factory() if factory else None) as pipeline:
                summary = await run.execute(pipeline, progress)
    finally:
        if own_fetcher and fetcher is not None:
            fetcher.close()
        store.close()
    return int(summary["articles"])
