"""Headshot reuse with the shipped face detector: the same face survives resize + JPEG q70 + crop."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from PIL import Image

from service.api import create_app
from service.config import Settings
from service.domain import Scope
from tests.conftest import SHARED

TEXT = "The council met on Tuesday and voted to repair the bridge on Main Street before winter."


def _jpeg(image: Image.Image, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _altered(image: Image.Image) -> bytes:
    w, h = image.size
    cropped = image.crop((int(w * 0.05), int(h * 0.04), w, h))
    return _jpeg(cropped.resize((int(cropped.width * 0.6), int(cropped.height * 0.6))), quality=70)


def test_same_face_under_another_name_is_flagged_and_different_people_are_not(settings: Settings) -> None:
    faces = sorted((SHARED / "faces" / "real_ciplab").glob("*.jpg"))[:2]
    first, second = (Image.open(p) for p in faces)
    with TestClient(create_app(settings)) as client:
        store = client.app.state.store  # type: ignore[attr-defined]
        auth = {"Authorization": f"Bearer {store.create_api_key('t', [Scope.CHECK])}"}

        def check(byline: str, image: bytes) -> dict:
            resp = client.post("/v1/checks", data={"text": TEXT, "byline": byline},
                               files=[("headshots", ("h.jpg", image, "image/jpeg"))], headers=auth)
            assert resp.status_code == 200, resp.text
            return resp.json()

        original = check("Drew Ortiz", _jpeg(first))
        assert original["headshots"][0]["face_box"] is not None
        reused = check("Sora Tanaka", _altered(first))
        matches = reused["headshots"][0]["reuse"]
        assert [m["check_id"] for m in matches] == [original["id"]]
        assert matches[0]["method"] == "face_embedding"
        other = check("Elena Marsh", _jpeg(second))
        assert other["headshots"][0]["reuse"] == []
