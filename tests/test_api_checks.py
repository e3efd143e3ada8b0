from __future__ import annotations

import base64
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.api import create_app
from service.config import Settings
from service.domain import Scope
from tests.fakes import jpeg_bytes, png_bytes

HUMAN = "The council met on Tuesday. It voted to repair the bridge on Main Street before winter comes."
AI = "Let us delve into this. We delve deeper. Then we delve again into the rich tapestry of the topic."

REPORT_KEYS = {"id", "created_at", "verdict", "reasons", "text", "headshots", "energy"}
TEXT_KEYS = {"ai_probability", "verdict", "abstain_reason", "sentences", "model", "threshold"}
HEADSHOT_KEYS = {"index", "synthetic_probability", "verdict", "abstain_reason", "face_box", "provenance", "model"}
ENERGY_KEYS = {"joules", "method", "source", "device", "window_s", "batch_size", "share", "kwh", "gco2e",
               "grid_gco2e_per_kwh", "smartphone_charges", "smartphone_charge_kwh"}


def test_multipart_check_returns_full_report(client: TestClient, auth: dict[str, str]) -> None:
    files = [("text", ("article.txt", AI.encode(), "text/plain")),
             ("headshots", ("me.jpg", jpeg_bytes((200, 90, 90)), "image/jpeg"))]
    resp = client.post("/v1/checks", data={"byline": "Drew Ortiz"}, files=files, headers=auth)
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert report.keys() >= REPORT_KEYS
    assert report["text"].keys() >= TEXT_KEYS
    assert report["headshots"][0].keys() >= HEADSHOT_KEYS
    assert report["energy"].keys() >= ENERGY_KEYS
    assert report["verdict"] == "likely_ai"
    assert report["text"]["verdict"] == "likely_ai"
    span = report["text"]["sentences"][0]
    assert AI[span["start"]:span["end"]] == "Let us delve into this."
    assert report["headshots"][0]["face_box"] == [64, 64, 128, 128]
    energy = report["energy"]
    assert energy["joules"] > 0
    assert energy["method"] == "estimated"
    assert energy["source"] == "cpu-time-estimate"
    assert energy["gco2e"] == pytest.approx(energy["kwh"] * energy["grid_gco2e_per_kwh"])
    assert energy["smartphone_charges"] == pytest.approx(energy["kwh"] / 0.022)


def test_json_check_with_base64_headshot_and_fetch(client: TestClient, auth: dict[str, str]) -> None:
    body = {"text": HUMAN, "byline": "Jane Roe",
            "headshots": [{"data": base64.b64encode(jpeg_bytes((40, 90, 90))).decode()}]}
    resp = client.post("/v1/checks", json=body, headers=auth)
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert report["verdict"] == "likely_human"
    fetched = client.get(f"/v1/checks/{report['id']}", headers=auth)
    assert fetched.json() == report
    assert client.get("/v1/checks/chk_nope", headers=auth).json()["error"]["code"] == "not_found"


def test_list_by_byline_is_paged(client: TestClient, auth: dict[str, str]) -> None:
    ids = [client.post("/v1/checks", json={"text": HUMAN + f" Item {i}.", "byline": "Pat Lee"}, headers=auth).json()["id"]
           for i in range(3)]
    client.post("/v1/checks", json={"text": HUMAN, "byline": "Someone Else"}, headers=auth)
    first = client.get("/v1/checks", params={"byline": "pat  LEE", "limit": 2}, headers=auth).json()
    second = client.get("/v1/checks", params={"byline": "Pat Lee", "limit": 2, "cursor": first["next_cursor"]},
                        headers=auth).json()
    seen = [r["id"] for r in first["items"] + second["items"]]
    assert sorted(seen) == sorted(ids)
    assert second["next_cursor"] is None


def test_auth_and_scopes(client: TestClient) -> None:
    assert client.post("/v1/checks", json={"text": HUMAN}).status_code == 401
    bad = client.post("/v1/checks", json={"text": HUMAN}, headers={"Authorization": "Bearer bck_x_y"})
    assert bad.json()["error"]["code"] == "unauthorized"
    audit_only = client.app.state.store.create_api_key("auditor", [Scope.AUDIT])  # type: ignore[attr-defined]
    resp = client.post("/v1/checks", json={"text": HUMAN}, headers={"Authorization": f"Bearer {audit_only}"})
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "forbidden"


def test_idempotency_key_replays_and_conflicts(client: TestClient, auth: dict[str, str]) -> None:
    headers = {**auth, "Idempotency-Key": "abc-1"}
    first = client.post("/v1/checks", json={"text": HUMAN}, headers=headers).json()
    again = client.post("/v1/checks", json={"text": HUMAN}, headers=headers).json()
    assert again["id"] == first["id"]
    conflict = client.post("/v1/checks", json={"text": AI}, headers=headers)
    assert conflict.status_code == 409


def _bomb_png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (9000, 9000)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("files", "status", "code"),
    [
        ([("text", ("a.txt", b"   \n", "text/plain"))], 400, "empty_text"),
        ([("text", ("a.txt", b"\xff\xfe bad", "text/plain"))], 400, "invalid_encoding"),
        ([("text", ("a.txt", HUMAN.encode(), "text/plain")), ("headshots", ("x.jpg", b"\xff\xd8\xff\xe0garbage", "image/jpeg"))],
         422, "corrupt_image"),
        ([("text", ("a.txt", HUMAN.encode(), "text/plain")), ("headshots", ("x.gif", b"GIF89a....", "image/gif"))],
         415, "unsupported_image_type"),
        ([("text", ("a.txt", HUMAN.encode(), "text/plain")), ("headshots", ("b.png", _bomb_png(), "image/png"))],
         413, "decompression_bomb"),
        ([("text", ("a.txt", HUMAN.encode(), "text/plain"))] + [("headshots", (f"{i}.png", png_bytes(), "image/png"))
                                                                 for i in range(9)], 413, "too_many_headshots"),
    ],
)
def test_bad_input_is_a_clear_4xx(client: TestClient, auth: dict[str, str], files: list, status: int, code: str) -> None:
    resp = client.post("/v1/checks", files=files, headers=auth)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code


def test_wrong_content_type_and_missing_parts(client: TestClient, auth: dict[str, str]) -> None:
    assert client.post("/v1/checks", content=b"hello", headers={**auth, "Content-Type": "text/plain"}).status_code == 422
    assert client.post("/v1/checks", json={}, headers=auth).json()["error"]["code"] == "invalid_request"
    assert client.post("/v1/checks", json={"headshots": [{"data": "!!"}]}, headers=auth).status_code == 422


def test_oversized_text_and_body(settings: Settings) -> None:
    small = settings.model_copy(update={"max_text_chars": 100, "max_request_bytes": 50_000})
    from tests.fakes import FakeTextDetector

    with TestClient(create_app(small, detectors={"text": FakeTextDetector()})) as client:
        token = client.app.state.store.create_api_key("t", [Scope.CHECK])  # type: ignore[attr-defined]
        headers = {"Authorization": f"Bearer {token}"}
        assert client.post("/v1/checks", json={"text": "a " * 80}, headers=headers).json()["error"]["code"] == "text_too_long"
        resp = client.post("/v1/checks", json={"text": "a" * 60_000}, headers=headers)
        assert resp.status_code == 413
        assert resp.json()["error"]["code"] == "request_too_large"


def test_missing_weights_make_readyz_fail_and_parts_abstain(settings: Settings, tmp_path) -> None:  # noqa: ANN001
    empty = settings.model_copy(update={"weights_dir": tmp_path / "no-weights"})
    with TestClient(create_app(empty)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "WeightsMissingError" in ready.json()["detectors"]["text"] or "not installed" in ready.json()["detectors"]["text"]
        token = client.app.state.store.create_api_key("t", [Scope.CHECK])  # type: ignore[attr-defined]
        report = client.post("/v1/checks", json={"text": HUMAN}, headers={"Authorization": f"Bearer {token}"}).json()
        assert report["text"]["ai_probability"] is None
        assert report["text"]["abstain_reason"] == "detector_unavailable"
        assert report["verdict"] == "abstain"
        assert report["energy"]["joules"] is None


def test_health_ready_metrics(client: TestClient, auth: dict[str, str]) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["ready"] is True
    client.post("/v1/checks", json={"text": HUMAN}, headers=auth)
    body = client.get("/metrics").text
    assert "bylinecheck_inference_energy_joules_total" in body
    assert 'bylinecheck_checks_total{source="api",verdict="likely_human"}' in body
    assert "/v1/checks" in client.get("/openapi.json").json()["paths"]
