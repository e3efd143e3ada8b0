"""Provenance moves the headshot verdict only as described: declarations of AI generation override the
classifier; weaker findings are evidence beside the score; missing metadata changes nothing."""

from __future__ import annotations

from fastapi.testclient import TestClient
from PIL.PngImagePlugin import PngInfo

from tests.test_provenance import SigningCredentials, c2pa_jpeg, credentials, dst_attribute, jpeg, png  # noqa: F401

TEXT = "The council met on Tuesday and voted to repair the bridge on Main Street before winter."


def _headshot(client: TestClient, auth: dict[str, str], image: bytes, name: str = "h.jpg") -> dict:
    resp = client.post("/v1/checks", data={"text": TEXT, "byline": "Pat Lee"},
                       files=[("headshots", (name, image, "application/octet-stream"))], headers=auth)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_signed_c2pa_declaration_makes_the_headshot_likely_ai(
    client: TestClient, auth: dict[str, str], credentials: SigningCredentials  # noqa: F811 - the fixture
) -> None:
    report = _headshot(client, auth, c2pa_jpeg(credentials, "trainedAlgorithmicMedia"))
    head = report["headshots"][0]
    assert head["verdict"] == "likely_ai"
    assert "provenance_declares_ai" in head["reasons"]
    assert head["synthetic_probability"] < 0.8  # the classifier alone would not have said so
    assert any(f["kind"] == "c2pa" and f["strength"] == "proves_ai" for f in head["provenance"])
    assert report["verdict"] == "likely_ai"


def test_iptc_declaration_makes_the_headshot_likely_ai(client: TestClient, auth: dict[str, str]) -> None:
    head = _headshot(client, auth, jpeg((96, 96), xmp=dst_attribute("trainedAlgorithmicMedia")))["headshots"][0]
    assert head["verdict"] == "likely_ai"
    assert head["provenance"][0]["kind"] == "iptc_digital_source_type"


def test_weaker_findings_and_missing_metadata_do_not_move_the_verdict(client: TestClient, auth: dict[str, str]) -> None:
    info = PngInfo()
    info.add_text("parameters", "portrait\nSteps: 30, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512")
    plain = _headshot(client, auth, png(size=(96, 96)), "p.png")["headshots"][0]
    with_params = _headshot(client, auth, png(info, size=(96, 96)), "p.png")["headshots"][0]
    assert plain["provenance"] == []
    assert with_params["provenance"][0]["strength"] == "suggests_ai"
    assert with_params["verdict"] == plain["verdict"]
    assert with_params["synthetic_probability"] == plain["synthetic_probability"]
    assert "provenance_declares_ai" not in with_params["reasons"]
