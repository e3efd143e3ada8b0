"""Security: key scopes, rate limits through the app, secrets kept out of logs, outbound requests that
refuse our own network (names that *resolve* to private addresses, not only literals), CORS off.

The only fake besides the detectors' forward passes is name resolution (an edge: DNS): ``socket.getaddrinfo``
answers from a table for a few ``.example`` names; ``localhost`` and numeric spellings resolve for real.
"""

from __future__ import annotations

import base64
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.audit.fetch import HeadshotFetcher, HeadshotUrlRefusedError
from service.config import Settings
from service.domain import Scope
from service.webhooks.errors import UnsafeUrlError
from service.webhooks.fetch import check_url, fetch_bytes, post_json
from tests.fakes import FakeFaceDetector, FakeTextDetector, portrait_bytes
from tests.webhook_support import STANDARD_SECRET, Harness, receiver_running, standard_headers, webhook_settings

TEXT = "The council met on Tuesday. It voted to repair the bridge on Main Street before winter comes."


@pytest.fixture
def keyed(settings: Settings) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    app = create_app(settings, detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
    with TestClient(app) as client:
        store = app.state.store
        keys = {name: {"Authorization": f"Bearer {store.create_api_key(name, scopes)}"}
                for name, scopes in {"check": [Scope.CHECK], "audit": [Scope.AUDIT], "admin": [Scope.ADMIN]}.items()}
        yield client, keys


def _status(client: TestClient, method: str, path: str, headers: dict[str, str], **kwargs: Any) -> int:
    return client.request(method, path, headers=headers, **kwargs).status_code


# Scopes ------------------------------------------------------------------------------------------

ROUTES = [  # (method, path, kwargs, scope that opens it)
    ("POST", "/v1/checks", {"json": {"text": TEXT}}, "check"),
    ("GET", "/v1/checks", {}, "check"),
    ("GET", "/v1/checks/chk_missing", {}, "check"),
    ("GET", "/v1/bylines/Nobody", {}, "check"),
    ("GET", "/v1/jobs/job_missing", {}, "check"),
    ("POST", "/v1/webhooks/subscribers", {"json": {"url": "https://hooks.example/x"}}, "admin"),
    ("POST", "/v1/webhooks/test", {"json": {}}, "admin"),
    ("GET", "/v1/audits/aud_000000000000000000000000", {}, "audit"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "scope"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_each_route_needs_its_scope(keyed: tuple[TestClient, dict[str, dict[str, str]]], method: str, path: str,
                                    kwargs: dict[str, Any], scope: str) -> None:
    client, keys = keyed
    assert _status(client, method, path, {}, **kwargs) == 401
    assert _status(client, method, path, {"Authorization": "Bearer bck_nope_nope"}, **kwargs) == 401
    for name, headers in keys.items():
        status = _status(client, method, path, headers, **kwargs)
        if name in (scope, "admin"):
            assert status != 403, (name, status)
            assert status != 401, (name, status)
        else:
            assert status == 403, (name, status)


def test_a_revoked_key_is_refused(keyed: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    client, keys = keyed
    token = keys["check"]["Authorization"].removeprefix("Bearer ")
    assert client.post("/v1/checks", json={"text": TEXT}, headers=keys["check"]).status_code == 200
    client.app.state.store.revoke_api_key(token.split("_")[1])  # type: ignore[attr-defined]
    resp = client.post("/v1/checks", json={"text": TEXT}, headers=keys["check"])
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"


# Rate limits -------------------------------------------------------------------------------------

def test_rate_limit_covers_reads_and_writes_per_key_and_refills(settings: Settings) -> None:
    limited = settings.model_copy(update={"rate_limit_per_minute": 120, "rate_limit_burst": 3})
    with TestClient(create_app(limited, detectors={"text": FakeTextDetector()})) as client:
        store = client.app.state.store  # type: ignore[attr-defined]
        a = {"Authorization": f"Bearer {store.create_api_key('a', [Scope.CHECK])}"}
        b = {"Authorization": f"Bearer {store.create_api_key('b', [Scope.CHECK])}"}
        codes = [client.post("/v1/checks", json={"text": TEXT}, headers=a).status_code,
                 client.get("/v1/checks", headers=a).status_code,
                 client.get("/v1/checks/chk_x", headers=a).status_code]
        assert codes == [200, 200, 404]
        limited_resp = client.get("/v1/checks", headers=a)
        assert limited_resp.status_code == 429
        assert limited_resp.json() == {"error": {"code": "rate_limited", "message": "rate limit exceeded for this API key"}}
        assert 1 <= int(limited_resp.headers["Retry-After"]) <= 60
        assert client.get("/v1/checks", headers=b).status_code == 200  # another key is unaffected
        assert client.get("/healthz").status_code == 200  # unauthenticated health is not limited


# Secrets and bodies stay out of the logs ----------------------------------------------------------

def test_no_bodies_images_or_secrets_in_debug_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    marker_text = "Zanzibar-quokka-7781 says the council met on Tuesday and voted to repair the bridge."
    image = portrait_bytes(11)
    settings = webhook_settings(tmp_path, secret_key="pepper-SECRET-9931", keep_headshot_images=True)
    caplog.set_level(logging.DEBUG)
    with receiver_running() as receiver:
        app = create_app(settings, detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
        with TestClient(app) as client:
            harness = Harness(client, receiver)
            sub = harness.subscribe()
            token = app.state.store.create_api_key("logs", [Scope.CHECK])
            auth = {"Authorization": f"Bearer {token}"}
            assert client.post("/v1/checks", data={"text": marker_text, "byline": "Quokka Writer"},
                               files={"headshots": ("h.jpg", image, "image/jpeg")}, headers=auth).status_code == 200
            body = (b'{"type": "article.published", "data": {"id": "log-1", "title": "T", "text": "'
                    + marker_text.encode() + b'", "byline": "Quokka Writer"}}')
            sent = harness.send("standard", body, standard_headers(body, "msg_logs_1"))
            assert sent.status_code == 202, sent.text
            job = harness.wait_job(sent.json()["job"]["id"])
            assert job["status"] == "done"
            receiver.wait_for("/callback")
            client.post("/v1/checks", json={"text": marker_text}, headers={"Authorization": "Bearer bck_forged_guess"})
            client.post("/v1/webhooks/standard", content=body, headers=standard_headers(body, "msg_bad", secret="whsec_"
                                                                                         + base64.b64encode(b"wrong").decode()))
    logged = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert caplog.records, "DEBUG logging was captured"
    forbidden = {
        "article text": "Zanzibar-quokka", "api key": token.split("_", 2)[2], "forged key": "bck_forged_guess",
        "pepper": "pepper-SECRET-9931", "webhook secret": STANDARD_SECRET.removeprefix("whsec_"),
        "subscriber secret": sub["secret"].removeprefix("whsec_"),
        "image bytes (base64)": base64.b64encode(image[:300]).decode()[:200], "image bytes (repr)": repr(image[200:260])[2:-1],
    }
    leaks = [what for what, needle in forbidden.items() if needle in logged]
    assert not leaks, leaks


# Outbound requests refuse our own network ---------------------------------------------------------

NAMES_FOR_LOOPBACK = ["localhost", "LocalHost", "2130706433", "0x7f000001", "127.1", "0177.0.0.1", "0", "[::1]",
                      "[::ffff:127.0.0.1]", "[::ffff:169.254.169.254]", "169.254.169.254", "[fe80::1]"]


@pytest.mark.parametrize("host", NAMES_FOR_LOOPBACK)
def test_names_and_spellings_of_local_addresses_are_refused(tmp_path: Path, host: str) -> None:
    settings = webhook_settings(tmp_path, private_allow_hosts=[], fetch_allow_hosts=[host.strip("[]").lower()])
    with pytest.raises(UnsafeUrlError):
        check_url(f"http://{host}:8000/x", settings)
    with pytest.raises(UnsafeUrlError):
        post_json(f"http://{host}/hook", settings, b"{}", {})
    with pytest.raises(UnsafeUrlError):
        fetch_bytes(f"http://{host}/face.jpg", settings, max_bytes=1000)


DNS = {"metadata.internal.example": ["169.254.169.254"], "intranet.example": ["10.20.30.40"],
       "rebind.example": ["93.184.216.34", "127.0.0.1"], "v6.example": ["fd12:3456::1"],
       "cgnat.example": ["100.64.1.2"], "public.example": ["93.184.216.34"],
       "sixtofour.example": ["2002:a9fe:a9fe::1"]}


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Name resolution is an edge: answer from DNS above, as a resolver would."""
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in DNS:
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 0))
                for a in DNS[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize("host", ["metadata.internal.example", "intranet.example", "rebind.example", "v6.example",
                                  "cgnat.example", "sixtofour.example"])
@pytest.mark.usefixtures("fake_dns")
def test_webhook_fetch_and_callbacks_refuse_names_resolving_to_private_addresses(tmp_path: Path, host: str) -> None:
    settings = webhook_settings(tmp_path, private_allow_hosts=[], fetch_allow_hosts=[host])
    with pytest.raises(UnsafeUrlError):
        post_json(f"https://{host}/hook", settings, b"{}", {})
    with pytest.raises(UnsafeUrlError):
        fetch_bytes(f"https://{host}/face.jpg", settings, max_bytes=1000)


@pytest.mark.usefixtures("fake_dns")
def test_allow_listed_private_host_and_public_names_pass(tmp_path: Path) -> None:
    settings = webhook_settings(tmp_path, private_allow_hosts=["intranet.example"], fetch_allow_hosts=[])
    assert check_url("https://intranet.example/hook", settings).address == "10.20.30.40"
    assert check_url("https://public.example/hook", settings).address == "93.184.216.34"
    with pytest.raises(UnsafeUrlError):
        check_url("https://metadata.internal.example/", settings)


@pytest.mark.parametrize("host", ["metadata.internal.example", "intranet.example", "rebind.example", "v6.example"])
@pytest.mark.usefixtures("fake_dns")
def test_audit_headshot_fetcher_refuses_names_resolving_to_private_addresses(tmp_path: Path, host: str) -> None:
    calls: list[str] = []

    def never(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(200, content=b"x")

    settings = webhook_settings(tmp_path, private_allow_hosts=[], fetch_allow_hosts=[host])
    fetcher = HeadshotFetcher(settings, transport=httpx.MockTransport(never))
    try:
        with pytest.raises(HeadshotUrlRefusedError):
            fetcher.fetch(f"https://{host}/face.jpg")
    finally:
        fetcher.close()
    assert calls == []


def test_subscriber_urls_pointing_inside_are_refused_over_http(tmp_path: Path) -> None:
    settings = webhook_settings(tmp_path, private_allow_hosts=[])
    with TestClient(create_app(settings, detectors={"text": FakeTextDetector()})) as client:
        admin = {"Authorization": f"Bearer {client.app.state.store.create_api_key('a', [Scope.ADMIN])}"}  # type: ignore[attr-defined]
        for url in ("http://localhost:6379/", "http://2130706433/", "http://[::ffff:169.254.169.254]/latest",
                    "file:///etc/passwd", "gopher://127.0.0.1:25/", "http://user:pw@example.com/"):
            resp = client.post("/v1/webhooks/subscribers", json={"url": url}, headers=admin)
            assert resp.status_code == 422, (url, resp.text)
            assert resp.json()["error"]["code"] == "unsafe_url"


# CORS --------------------------------------------------------------------------------------------

def test_cors_is_off_by_default(client: TestClient, auth: dict[str, str]) -> None:
    origin = {"Origin": "https://evil.example"}
    preflight = client.options("/v1/checks", headers={**origin, "Access-Control-Request-Method": "POST",
                                                      "Access-Control-Request-Headers": "authorization"})
    assert "access-control-allow-origin" not in preflight.headers
    for resp in (client.post("/v1/checks", json={"text": TEXT}, headers={**auth, **origin}),
                 client.get("/v1/checks", headers={**auth, **origin}), client.get("/healthz", headers=origin),
                 client.get("/", headers=origin)):
        assert not [h for h in resp.headers if h.lower().startswith("access-control-")], resp.headers
