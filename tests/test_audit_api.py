"""POST /v1/audits runs an uploaded archive in the background; GET follows it to the report."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.config import Settings
from service.domain import Scope
from tests.audit_helpers import articles, write_wxr
from tests.fakes import FakeFaceDetector, FakeTextDetector


@pytest.fixture
def audit_client(settings: Settings, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], dict[str, str]]]:
    app = create_app(settings.model_copy(update={"audit_dir": tmp_path / "audits"}),
                     detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
    with TestClient(app) as client:
        auditor = app.state.store.create_api_key("auditor", [Scope.AUDIT])
        other = app.state.store.create_api_key("other", [Scope.AUDIT])
        yield client, {"Authorization": f"Bearer {auditor}"}, {"Authorization": f"Bearer {other}"}


def test_upload_follow_and_read_report(audit_client: tuple[TestClient, dict[str, str], dict[str, str]],
                                       tmp_path: Path) -> None:
    client, auth, other = audit_client
    archive = write_wxr(tmp_path / "export.xml", articles(6))
    resp = client.post("/v1/audits", files={"archive": ("export.xml", archive.read_bytes(), "application/xml")},
                       headers=auth)
    assert resp.status_code == 202, resp.text
    audit_id = resp.json()["id"]
    deadline = time.monotonic() + 30
    body = resp.json()
    while body["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
        body = client.get(f"/v1/audits/{audit_id}", headers=auth).json()
    assert body["status"] == "done", body
    assert body["total"] == body["done"] == 6
    assert body["progress"] == 1.0
    assert body["format"] == "wxr"
    assert set(body["summary"]["flagged_authors"]) == {"Bo Bot", "Cy Bot"}
    report = client.get(body["report_url"], headers=auth)
    assert report.status_code == 200
    assert report.text.count("<svg") == 4
    assert client.get(f"/v1/audits/{audit_id}", headers=other).status_code == 404


def test_upload_needs_the_audit_scope_and_an_archive(
        audit_client: tuple[TestClient, dict[str, str], dict[str, str]]) -> None:
    client, auth, _ = audit_client
    token = client.app.state.store.create_api_key("checker", [Scope.CHECK])  # type: ignore[attr-defined]
    files = {"archive": ("a.jsonl", b"{}\n", "application/json")}
    assert client.post("/v1/audits", files=files, headers={"Authorization": f"Bearer {token}"}).status_code == 403
    resp = client.post("/v1/audits", data={"format": "pdf"}, files=files, headers=auth)
    assert resp.json()["error"]["code"] == "invalid_request"
    assert client.get("/v1/audits/aud_000000000000000000000000", headers=auth).status_code == 404
