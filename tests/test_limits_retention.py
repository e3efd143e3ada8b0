from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.api import create_app
from service.config import Settings
from service.domain import Scope
from service.maintenance import purge_expired_images
from service.ratelimit import RateLimitedError, RateLimiter
from service.store.models import HeadshotRow
from tests.fakes import FakeClock, FakeFaceDetector, FakeTextDetector, portrait_bytes


def test_token_bucket_refills_and_says_when() -> None:
    clock = FakeClock(1000.0)
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock)
    limiter.take("k")
    limiter.take("k")
    with pytest.raises(RateLimitedError) as err:
        limiter.take("k")
    assert err.value.headers["Retry-After"] == "1"
    limiter.take("other")  # keys are independent
    clock.now += 1.0
    limiter.take("k")


def test_api_returns_429_with_retry_after_per_key(settings: Settings) -> None:
    limited = settings.model_copy(update={"rate_limit_per_minute": 1, "rate_limit_burst": 2})
    with TestClient(create_app(limited, detectors={"text": FakeTextDetector()})) as client:
        store = client.app.state.store  # type: ignore[attr-defined]
        a = {"Authorization": f"Bearer {store.create_api_key('a', [Scope.CHECK])}"}
        b = {"Authorization": f"Bearer {store.create_api_key('b', [Scope.CHECK])}"}
        body = {"text": "The council met on Tuesday and voted to repair the bridge."}
        assert [client.post("/v1/checks", json=body, headers=a).status_code for _ in range(2)] == [200, 200]
        resp = client.post("/v1/checks", json=body, headers=a)
        assert resp.status_code == 429
        assert resp.json()["error"]["code"] == "rate_limited"
        assert int(resp.headers["Retry-After"]) >= 1
        assert client.post("/v1/checks", json=body, headers=b).status_code == 200


def test_kept_images_are_deleted_after_retention_and_hashes_stay(settings: Settings) -> None:
    keep = settings.model_copy(update={"keep_headshot_images": True, "headshot_retention_days": 7})
    with TestClient(create_app(keep, detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})) as client:
        store = client.app.state.store  # type: ignore[attr-defined]
        auth = {"Authorization": f"Bearer {store.create_api_key('a', [Scope.CHECK])}"}
        files = [("headshots", ("h.jpg", portrait_bytes(5), "image/jpeg"))]
        assert client.post("/v1/checks", data={"text": "A plain sentence about the weather today."}, files=files,
                           headers=auth).status_code == 200
        assert purge_expired_images(store, keep) == 0
        assert purge_expired_images(store, keep, now=datetime.now(UTC) + timedelta(days=8)) == 1
        with store.session() as session:
            row = session.scalars(select(HeadshotRow)).one()
            assert row.image is None
            assert row.phash
            assert row.sha256


def test_images_are_not_kept_by_default(client: TestClient, auth: dict[str, str]) -> None:
    files = [("headshots", ("h.jpg", portrait_bytes(6), "image/jpeg"))]
    client.post("/v1/checks", data={"text": "A plain sentence about the weather today."}, files=files, headers=auth)
    with client.app.state.store.session() as session:  # type: ignore[attr-defined]
        row = session.scalars(select(HeadshotRow)).one()
        assert row.image is None
        assert row.phash
