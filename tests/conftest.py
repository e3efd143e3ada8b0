from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.config import Settings
from service.domain import Scope
from tests.browser import browser_page  # noqa: F401 - fixture
from tests.fakes import FakeFaceDetector, FakeTextDetector

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        database_url=f"sqlite:///{tmp_path / 'test.sqlite3'}",
        bootstrap_api_key=False,
        energy_backend="cpu-time",
        max_wait_s=0.02,
        queue_path=tmp_path / "queue.sqlite3",
    )


@pytest.fixture
def text_detector() -> FakeTextDetector:
    return FakeTextDetector()


@pytest.fixture
def app_client(settings: Settings, text_detector: FakeTextDetector) -> Iterator[tuple[TestClient, dict[str, str]]]:
    app = create_app(settings, detectors={"text": text_detector, "face": FakeFaceDetector()})
    with TestClient(app) as client:
        token = app.state.store.create_api_key("test", [Scope.CHECK])
        yield client, {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(app_client: tuple[TestClient, dict[str, str]]) -> TestClient:
    return app_client[0]


@pytest.fixture
def auth(app_client: tuple[TestClient, dict[str, str]]) -> dict[str, Any]:
    return app_client[1]
