"""A real audit process for the kill test: ``python -m tests.audit_worker DB_URL ARCHIVE OUT [DELAY_S]``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from service.audit import AuditOptions, run_audit
from service.config import Settings
from tests.fakes import FakeFaceDetector, FakeTextDetector


def main(argv: list[str]) -> int:
    db_url, archive, out = argv[:3]
    delay = float(argv[3]) if len(argv) > 3 else 0.0
    settings = Settings(environment="test", database_url=db_url, bootstrap_api_key=False, energy_backend="cpu-time",
                        max_wait_s=0.0)
    detectors = {"text": FakeTextDetector(forward_delay_s=delay), "face": FakeFaceDetector()}
    asyncio.run(run_audit(settings, Path(archive), Path(out), options=AuditOptions(concurrency=2), detectors=detectors))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
