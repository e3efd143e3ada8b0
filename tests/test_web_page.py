"""The editors' page in a real headless Chromium against the real app served by uvicorn.

Only the detectors' forward passes are fakes (FakeTextDetector scores by the word "delve",
FakeFaceDetector returns a centred face box); batching, pipeline, provenance, SQLite and auth run for real.
The results view is saved to ``test-output/web-results.png``.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from PIL import Image, ImageDraw

from service.api import create_app
from service.api.security import security_headers
from service.config import Settings
from service.domain import Scope
from tests.browser import OUTPUT
from tests.fakes import FakeFaceDetector, FakeTextDetector

pytestmark = pytest.mark.slow

HUMAN = ("The council met on Tuesday. It voted to repair the bridge on Main Street before winter comes. "
         "The clerk read <script>alert(1)</script> aloud.")
AI = "Let us delve into 𝐀𝐈 ethics. We delve deeper.\nThen we delve again into the rich tapestry of the topic."
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


@dataclass(frozen=True)
class LiveApp:
    url: str
    token: str
    app: FastAPI


@pytest.fixture
def live_app(settings: Settings) -> Iterator[LiveApp]:
    """The real app on 127.0.0.1 (a free port) in a uvicorn thread, with a 'check' API key."""
    app = create_app(settings, detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="none", lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield LiveApp(f"http://127.0.0.1:{port}", app.state.store.create_api_key("editor", [Scope.CHECK]), app)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def headshot_file(tmp_path: Path) -> Path:
    """A portrait-shaped (240x320) drawing of a head whose EXIF names a camera: a provenance finding to show.

    Its red channel is low, so FakeFaceDetector calls it likely human.
    """
    image = Image.new("RGB", (240, 320), (28, 58, 92))
    draw = ImageDraw.Draw(image)
    draw.ellipse([20, 230, 220, 420], fill=(40, 52, 70))
    draw.rectangle([100, 190, 140, 250], fill=(120, 92, 80))
    draw.ellipse([66, 76, 174, 210], fill=(128, 98, 84))
    draw.ellipse([62, 60, 178, 128], fill=(36, 28, 26))
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS R5"
    path = tmp_path / "headshot.jpg"
    image.save(path, "JPEG", quality=90, exif=exif)
    return path


def watch_console(page: Any) -> list[str]:
    """Console errors and page errors (a CSP violation shows up here) collected during the test."""
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return problems


def enter_key(page: Any, key: str) -> None:
    page.fill("#api-key", key)
    page.click("#key-form button[type=submit]")


def submit(page: Any, text: str, byline: str, headshot: Path, verdict: str) -> None:
    page.click("#check-form button[type=reset]")
    page.fill("#text", text)
    page.fill("#byline", byline)
    page.set_input_files("#headshots", str(headshot))
    page.wait_for_selector("#headshot-list li")
    page.click("#submit-check")
    page.wait_for_selector(f"#results .report .verdict-line .verdict-{verdict}")


def mark_texts(page: Any) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        "#results mark.sent",
        "ms => ms.map(m => ({text: m.firstChild.textContent, title: m.title, cls: m.className}))")


def check_face_box(page: Any) -> None:
    """The overlay sits on the image at the fake's box [w/4, h/4, w/2, h/2], scaled to the displayed size."""
    img = page.locator("#results .headshot-img").first.bounding_box()
    box = page.locator("#results .face-box").first.bounding_box()
    assert img is not None
    assert box is not None
    assert box["x"] - img["x"] == pytest.approx(img["width"] / 4, abs=2)
    assert box["y"] - img["y"] == pytest.approx(img["height"] / 4, abs=2)
    assert box["width"] == pytest.approx(img["width"] / 2, abs=2)
    assert box["height"] == pytest.approx(img["height"] / 2, abs=2)


def fallback_profile(page: Any, name: str) -> Any:
    """The author page's own profile, built from GET /v1/checks?byline= (used where /v1/bylines/ answers 404)."""
    return page.evaluate("""async name => {
        const {profileFromReports} = await import("/static/byline.js");
        const headers = {Authorization: `Bearer ${sessionStorage.getItem("bylinecheck.apiKey")}`};
        const page = await (await fetch(`/v1/checks?byline=${encodeURIComponent(name)}`, {headers})).json();
        return profileFromReports(name, page.items);
    }""", name)


def server_profile(live_app: LiveApp, name: str) -> Any:
    """GET /v1/bylines/{name}, less the headshot hashes the page does not show."""
    profile = httpx.get(f"{live_app.url}/v1/bylines/{name}", headers={"Authorization": f"Bearer {live_app.token}"}).json()
    for h in profile["headshots"]:
        del h["sha256"], h["phash"]
    return profile


def test_editor_checks_human_and_ai_text_with_a_headshot(browser_page: Any, live_app: LiveApp, tmp_path: Path) -> None:
    page = browser_page
    problems = watch_console(page)
    headshot = headshot_file(tmp_path)
    page.goto(live_app.url + "/")
    enter_key(page, live_app.token)
    assert live_app.token[-4:] in page.inner_text("#key-status")

    submit(page, HUMAN, "Jane Roe", headshot, "likely_human")
    assert page.evaluate("document.activeElement.id") == "results"
    marks = mark_texts(page)
    assert marks[0]["text"] == "The council met on Tuesday."
    assert marks[0]["title"] == "AI probability 0.0%"
    assert page.locator("#results .article-text script").count() == 0
    assert "<script>alert(1)</script>" in page.inner_text("#results .article-text")
    assert page.locator("#results .reuse").count() == 0
    # a face that is not flagged carries the note that unseen generators mostly pass as real
    assert "not proof the photo is real" in page.inner_text("#results .headshot .face-caveat")

    submit(page, AI, "Drew Ortiz", headshot, "likely_ai")
    marks = mark_texts(page)
    assert marks[0]["text"] == "Let us delve into 𝐀𝐈 ethics."  # code-point offsets, not UTF-16
    assert marks[0]["title"] == "AI probability 100.0%"
    assert "sent-high" in marks[0]["cls"]
    assert page.locator("#results .legend").is_visible()
    check_face_box(page)
    findings = page.inner_text("#results table.findings")
    for expected in ("exif camera", "Canon EOS R5", "suggests camera"):
        assert expected in findings
    energy = page.inner_text("#results .energy-line")
    for expected in (" J · ", "gCO2e", "of a smartphone charge", "estimated (cpu-time-estimate"):
        assert expected in energy
    assert "Text: Likely AI-made." in page.inner_text("#results .reasons")
    reuse_link = page.locator("#results .reuse a")
    assert reuse_link.inner_text() == "Jane Roe"
    page.locator("#results").screenshot(path=str(OUTPUT / "web-results.png"))
    page.screenshot(path=str(OUTPUT / "web-page.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    check_face_box(page)
    page.locator("#results").screenshot(path=str(OUTPUT / "web-results-phone.png"))
    page.set_viewport_size({"width": 1280, "height": 900})

    page.wait_for_function("document.querySelectorAll('#recent-body tbody tr').length === 2")
    reuse_link.click()
    page.wait_for_url("**/bylines/Jane%20Roe")
    page.wait_for_selector("#author-body table")
    assert page.inner_text("#author-heading") == "Author: Jane Roe"
    assert page.locator("#author-body tbody tr .verdict-likely_human").count() == 2  # the check, its headshot
    page.goto(live_app.url + "/bylines/Drew%20Ortiz")
    page.wait_for_selector("#author-body .reuse a")
    assert page.inner_text("#author-body .reuse a") == "Jane Roe"
    page.screenshot(path=str(OUTPUT / "web-author.png"), full_page=True)
    assert fallback_profile(page, "Drew Ortiz") == server_profile(live_app, "Drew Ortiz")
    page.click("#author-body tbody a[href^='/?check=']")
    page.wait_for_selector("#results .report .verdict-line .verdict-likely_ai")
    assert page.locator("#results .headshot-placeholder + .face-box").count() == 1  # the image is not kept
    assert problems == []

    page.goto(live_app.url + "/bylines/Nobody%20Here")  # the profile's 404 falls back to /v1/checks?byline=
    page.wait_for_selector("#author-body >> text=No checks under this byline yet.")


def test_security_headers_on_pages_assets_and_api(live_app: LiveApp) -> None:
    paths = {"/": "text/html", "/bylines/Jane%20Roe": "text/html", "/static/check.js": "text/javascript",
             "/static/app.css": "text/css", "/v1/checks": "application/json", "/static/nope.js": "application/json"}
    with httpx.Client(base_url=live_app.url) as client:
        for path, content_type in paths.items():
            resp = client.get(path)
            assert resp.headers["content-type"].startswith(content_type), path
            for name, value in SECURITY_HEADERS.items():
                assert resp.headers[name] == value, (path, name)
            csp = resp.headers["content-security-policy"]
            for directive in ("default-src 'self'", "img-src 'self' blob: data:", "script-src 'self'",
                              "frame-ancestors 'none'"):
                assert directive in csp
            assert "unsafe-inline" not in csp
            assert "camera=()" in resp.headers["permissions-policy"]
            assert "access-control-allow-origin" not in resp.headers
        assert client.get("/v1/checks").status_code == 401
        docs_csp = client.get("/docs").headers["content-security-policy"]  # Swagger UI comes from its CDN
        assert "https://cdn.jsdelivr.net" in docs_csp
        assert "frame-ancestors 'none'" in docs_csp
        assert client.get("/static/..%2Fapi%2Fapp.py").status_code == 404
        assert client.options("/v1/checks", headers={"Origin": "https://evil.example",
                                                      "Access-Control-Request-Method": "POST"}).status_code == 405


def test_key_errors_are_explained_and_the_key_lasts_the_session(browser_page: Any, live_app: LiveApp) -> None:
    page = browser_page
    page.goto(live_app.url + "/")
    enter_key(page, "bck_not_a_real_key")
    page.wait_for_selector("#recent-error:not([hidden])")
    assert "API key was not accepted" in page.inner_text("#recent-error")
    assert "(unauthorized)" in page.inner_text("#recent-error")

    audit_key = live_app.app.state.store.create_api_key("auditor", [Scope.AUDIT])
    enter_key(page, audit_key)
    page.fill("#text", "Some words for the council to read today.")
    page.click("#submit-check")
    page.wait_for_selector("#form-error:not([hidden])")
    assert "not allowed" in page.inner_text("#form-error")
    assert "(forbidden)" in page.inner_text("#form-error")

    enter_key(page, live_app.token)
    page.reload()
    assert page.input_value("#api-key") == live_app.token
    page.wait_for_selector("#recent-body p")
    page.click("#forget-key")
    assert page.evaluate("sessionStorage.length") == 0

    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.goto(live_app.url + "/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.keyboard.press("Tab")  # the site name, a link home
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "api-key"


def test_the_self_contained_audit_report_may_style_inline_but_never_run_scripts() -> None:
    csp = dict(security_headers("/v1/audits/aud_1/report.html"))[b"content-security-policy"].decode()
    assert "default-src 'none'" in csp
    assert "style-src 'unsafe-inline'" in csp
    assert "script" not in csp
    assert dict(security_headers("/v1/audits/aud_1"))[b"content-security-policy"].decode().startswith("default-src 'self'")


def test_a_text_file_and_dropped_images_fill_the_form(browser_page: Any, live_app: LiveApp, tmp_path: Path) -> None:
    page = browser_page
    page.goto(live_app.url + "/")
    article = tmp_path / "article.txt"
    article.write_bytes("\ufeffThe council met on Tuesday.\nIt voted.".encode())
    page.set_input_files("#text-file", str(article))
    page.wait_for_function("document.getElementById('text').value.length > 0")
    assert page.input_value("#text") == "The council met on Tuesday.\nIt voted."

    jpeg = base64.b64encode(headshot_file(tmp_path).read_bytes()).decode()
    drop = page.evaluate_handle("""jpeg => {
        const bytes = Uint8Array.from(atob(jpeg), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "dropped.jpg", {type: "image/jpeg"}));
        dt.items.add(new File(["not an image"], "notes.txt", {type: "text/plain"}));
        return dt;
    }""", jpeg)
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": drop})
    page.wait_for_selector("#headshot-list li")
    assert "dropped.jpg" in page.inner_text("#headshot-list")
    assert "notes.txt" in page.inner_text("#form-error")
    page.click("#headshot-list button")
    assert page.locator("#headshot-list li").count() == 0
    assert page.evaluate("document.activeElement.id") == "headshots"
