from __future__ import annotations

import io

from fastapi.testclient import TestClient
from PIL import Image

from tests.fakes import portrait_bytes

TEXT = "The council met on Tuesday and voted to repair the bridge before winter."


def _recompressed(data: bytes, scale: float, quality: int) -> bytes:
    image = Image.open(io.BytesIO(data))
    image = image.resize((int(image.width * scale), int(image.height * scale)))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _check(client: TestClient, auth: dict[str, str], byline: str, image: bytes) -> dict:
    files = [("headshots", ("h.jpg", image, "image/jpeg"))]
    resp = client.post("/v1/checks", data={"text": TEXT, "byline": byline}, files=files, headers=auth)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_same_headshot_under_another_byline_is_flagged(client: TestClient, auth: dict[str, str]) -> None:
    original = portrait_bytes(1)
    first = _check(client, auth, "Drew Ortiz", original)
    assert first["headshots"][0]["reuse"] == []
    same_author = _check(client, auth, "drew ortiz", original)
    assert same_author["headshots"][0]["reuse"] == []
    other = _check(client, auth, "Sora Tanaka", _recompressed(original, 0.6, 70))
    matches = other["headshots"][0]["reuse"]
    assert {m["check_id"] for m in matches} == {first["id"], same_author["id"]}
    assert matches[0]["byline"].lower() == "drew ortiz"
    assert "headshot_0_reused_under_other_byline" in other["reasons"]
    assert other["verdict"] == "uncertain"

    profile = client.get("/v1/bylines/Sora Tanaka", headers=auth).json()
    assert profile["checks"][0]["id"] == other["id"]
    assert profile["reuse"][0]["other_byline"].lower() == "drew ortiz"
    assert client.get("/v1/bylines/Nobody", headers=auth).status_code == 404


def test_different_images_are_not_matched(client: TestClient, auth: dict[str, str]) -> None:
    _check(client, auth, "A One", portrait_bytes(2))
    other = _check(client, auth, "B Two", portrait_bytes(3))
    assert other["headshots"][0]["reuse"] == []
