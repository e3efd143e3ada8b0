"""The bad-input catalogue: each hostile or odd input class, and the clear answer it gets.

Images are built here (Pillow, or a few patched header bytes) so every case is small and fast. Decisions:
multi-frame images stay 415 (a headshot is one still; an animated file can show a CMS one frame and us
another); CMYK, 16-bit, alpha, palette and 1-bit images are accepted and converted to 8-bit RGB (200);
text with zero-width characters, homoglyphs, mixed scripts or HTML is accepted as text (never rendered).
"""

from __future__ import annotations

import io
import select
import socket
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.api import create_app
from service.audit.readers import read_rows
from service.config import Settings
from service.domain import Scope
from tests.fakes import FakeFaceDetector, FakeTextDetector, jpeg_bytes, portrait_bytes
from tests.live import serve_in_thread

TEXT = "The council met on Tuesday. It voted to repair the bridge on Main Street before winter comes."


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_raw(width: int, height: int, depth: int, color_type: int, row: bytes) -> bytes:
    """A PNG written by hand (16-bit modes Pillow cannot save)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    idat = zlib.compress(b"".join(b"\x00" + row for _ in range(height)))
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (CRC fixed): a decompression bomb's header."""
    small = _encode(Image.new("L", (8, 8)), "PNG")
    ihdr = struct.pack(">II", width, height) + small[24:29]
    return small[:8] + _png_chunk(b"IHDR", ihdr) + small[33:]


def _jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(jpeg_bytes(size=(16, 16)))
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _webp_claiming(width: int, height: int) -> bytes:
    """A lossless WebP with its VP8L header patched to ``width`` x ``height``."""
    data = bytearray(_encode(Image.new("RGB", (16, 16), (1, 2, 3)), "WEBP", lossless=True))
    at = data.find(b"VP8L") + 8
    assert data[at] == 0x2F
    bits = int.from_bytes(data[at + 1:at + 5], "little")
    bits = (bits & ~0x0FFFFFFF) | (width - 1) | ((height - 1) << 14)
    data[at + 1:at + 5] = bits.to_bytes(4, "little")
    return bytes(data)


def _animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0))]
    return _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _corrupt_png_crc() -> bytes:
    data = bytearray(_encode(Image.new("RGB", (32, 32), (9, 9, 9)), "PNG"))
    idat = data.find(b"IDAT")
    data[idat + 6] ^= 0xFF  # flips a byte inside the compressed data; the CRC no longer matches
    return bytes(data)


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


REJECTED_IMAGES = {
    "truncated_jpeg": (_truncated(portrait_bytes(1)), 422, "corrupt_image"),
    "truncated_png": (_truncated(_encode(Image.fromarray(np.random.default_rng(0).integers(
        0, 255, (64, 64, 3), dtype=np.uint8)), "PNG")), 422, "corrupt_image"),
    "truncated_webp": (_truncated(_encode(Image.new("RGB", (64, 64), (5, 50, 90)), "WEBP")), 422, "corrupt_image"),
    "corrupt_jpeg_body": (b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, 422, "corrupt_image"),
    "corrupt_png_crc": (_corrupt_png_crc(), 422, "corrupt_image"),
    "corrupt_webp_body": (b"RIFF\x20\x00\x00\x00WEBPVP8 " + b"\x00" * 24, 422, "corrupt_image"),
    "bomb_png_header_65535px": (_png_claiming(65535, 65535), 413, "decompression_bomb"),
    "jpeg_100_megapixels": (_jpeg_claiming(10_000, 10_000), 413, "decompression_bomb"),
    "png_100_megapixels": (_png_claiming(10_000, 10_000), 413, "decompression_bomb"),
    "webp_100_megapixels": (_webp_claiming(10_000, 10_000), 413, "decompression_bomb"),
    "animated_png": (_animated("PNG"), 415, "unsupported_image_type"),
    "animated_webp": (_animated("WEBP"), 415, "unsupported_image_type"),
    "gif": (_encode(Image.new("RGB", (8, 8)), "GIF"), 415, "unsupported_image_type"),
    "svg": (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", 415, "unsupported_image_type"),
    "empty_file": (b"", 415, "unsupported_image_type"),
}

ACCEPTED_IMAGES = {
    "cmyk_jpeg": _encode(Image.new("CMYK", (64, 64), (10, 60, 90, 20)), "JPEG"),
    "grey_16bit_png": _encode(Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 12).astype(np.uint16)), "PNG"),
    "rgb_16bit_png": _png_raw(32, 32, 16, 2, b"\x80\x00\x40\x00\x20\x00" * 32),
    "grey_alpha_16bit_png": _png_raw(32, 32, 16, 4, b"\x80\x00\xff\xff" * 32),
    "rgba_png": _encode(Image.new("RGBA", (64, 64), (200, 100, 50, 0)), "PNG"),
    "rgba_webp": _encode(Image.new("RGBA", (64, 64), (200, 100, 50, 128)), "WEBP"),
    "palette_png_transparency": _encode(Image.new("P", (64, 64), 3), "PNG", transparency=3),
    "one_bit_png": _encode(Image.new("1", (64, 64), 1), "PNG"),
    "greyscale_jpeg": _encode(Image.new("L", (64, 64), 128), "JPEG"),
    "exif_rotated_jpeg": _encode(Image.new("RGB", (48, 64), (90, 90, 90)), "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08"
                                 b"\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x00\x00\x00\x00"),
}


def _headshot(data: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("text", ("a.txt", TEXT.encode(), "text/plain")), ("headshots", ("h.bin", data, "application/octet-stream"))]


@pytest.mark.parametrize("name", sorted(REJECTED_IMAGES))
def test_bad_image_is_a_clear_4xx(client: TestClient, auth: dict[str, str], name: str) -> None:
    data, status, code = REJECTED_IMAGES[name]
    resp = client.post("/v1/checks", files=_headshot(data), headers=auth)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code


@pytest.mark.parametrize("name", sorted(ACCEPTED_IMAGES))
def test_odd_but_valid_image_is_converted_and_checked(client: TestClient, auth: dict[str, str], name: str) -> None:
    resp = client.post("/v1/checks", files=_headshot(ACCEPTED_IMAGES[name]), headers=auth)
    assert resp.status_code == 200, resp.text
    head = resp.json()["headshots"][0]
    assert head["width"] > 0
    assert head["height"] > 0


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    from service.inputs import decode_image

    pixels = decode_image(ACCEPTED_IMAGES["grey_16bit_png"], Settings()).pixels
    assert 0 < pixels.mean() < 255
    assert pixels.max() < 255  # Pillow's plain conversion would clip most of this image to white


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": ""}, 400, "empty_text"),
        ({"text": " \n\t\u3000 "}, 400, "empty_text"),
        ({"text": "a " * (5 * 1024 * 1024)}, 413, "text_too_long"),
        ({"text": "before\x00after and more words here"}, 400, "invalid_encoding"),
        ({}, 422, "invalid_request"),
        ({"text": 12}, 422, "invalid_request"),
        ({"text": TEXT, "byline": "x" * 301}, 422, "invalid_request"),
        ({"text": TEXT, "headshots": [{"data": "not base64!"}]}, 422, "invalid_request"),
    ],
    ids=["empty", "whitespace", "10MB", "nul", "nothing", "number", "long_byline", "bad_base64"],
)
def test_bad_json_text_is_a_clear_4xx(client: TestClient, auth: dict[str, str], body: dict, status: int,
                                      code: str) -> None:
    resp = client.post("/v1/checks", json=body, headers=auth)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b'{"text": "caf\xe9 au lait"}', 422, "invalid_request"),  # Latin-1 byte in a JSON body
        (b'{"text": "lone \\ud800 surrogate in a sentence"}', 422, "invalid_request"),
        (b'{"text": "unterminated', 422, "invalid_request"),
        (b"\xef\xbb\xbf\xff\xfe", 422, "invalid_request"),
    ],
    ids=["latin1", "lone_surrogate", "truncated_json", "bom_garbage"],
)
def test_invalid_utf8_json_is_refused(client: TestClient, auth: dict[str, str], raw: bytes, status: int,
                                      code: str) -> None:
    resp = client.post("/v1/checks", content=raw, headers={**auth, "Content-Type": "application/json"})
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("raw", "code"),
    [(b"\xff\xfe not utf-8", "invalid_encoding"), (b"caf\xe9", "invalid_encoding"), (b"\xed\xa0\x80 surrogate",
                                                                                     "invalid_encoding")],
    ids=["utf16_bom", "latin1", "encoded_surrogate"],
)
def test_invalid_utf8_text_file_is_400(client: TestClient, auth: dict[str, str], raw: bytes, code: str) -> None:
    resp = client.post("/v1/checks", files=[("text", ("a.txt", raw, "text/plain"))], headers=auth)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == code


def test_ten_megabyte_text_file_is_413(client: TestClient, auth: dict[str, str]) -> None:
    resp = client.post("/v1/checks", files=[("text", ("a.txt", b"word " * (2 * 1024 * 1024), "text/plain"))],
                       headers=auth)
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "text_too_long"


@pytest.mark.parametrize(
    "text",
    [
        "The c\u200bounc\u200cil m\u200det on Tues\u2060day. It voted to repair the bridge before winter comes again.",
        "Th\u0435 c\u043euncil m\u0435t \u043en Tu\u0435sday. It v\u043et\u0435d t\u043e r\u0435pair th\u0435 bridge.",
        "The council met in 東京 on Tuesday. Совет проголосовал. صوّت المجلس. The bridge will be repaired soon.",
        "<script>alert('x')</script><p onclick=\"steal()\">The council met on Tuesday to repair the bridge.</p>",
        "\u202eThe council met on Tuesday\u202c and voted to repair the bridge before the winter storms arrive.",
    ],
    ids=["zero_width", "homoglyphs", "mixed_scripts", "html", "bidi_override"],
)
def test_padded_or_mixed_text_is_accepted_as_plain_text(client: TestClient, auth: dict[str, str], text: str) -> None:
    resp = client.post("/v1/checks", json={"text": text, "byline": "<b>Jane</b>"}, headers=auth)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["x-content-type-options"] == "nosniff"
    for span in resp.json()["text"]["sentences"]:
        assert 0 <= span["start"] < span["end"] <= len(text)


def test_text_detector_flags_zero_width_and_homoglyph_padding() -> None:
    normalise = pytest.importorskip("detectors.text.normalise")
    padded = normalise.normalise("Th\u0435 c\u043euncil m\u200bet on Tuesday to vote on the bridge.")
    assert {"zero_width", "homoglyphs"} <= {f.split(":")[0] for f in padded.flags} or len(padded.flags) >= 2
    assert padded.text == "The council met on Tuesday to vote on the bridge."


def test_huge_multipart_bodies_are_413(settings: Settings) -> None:
    small = settings.model_copy(update={"max_request_bytes": 200_000})
    with TestClient(create_app(small, detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})) as client:
        auth = {"Authorization": f"Bearer {client.app.state.store.create_api_key('t', [Scope.CHECK])}"}  # type: ignore[attr-defined]
        big = [("text", ("a.txt", TEXT.encode(), "text/plain")), ("headshots", ("h.jpg", b"\xff" * 300_000, "image/jpeg"))]
        declared = client.post("/v1/checks", files=big, headers=auth)
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "request_too_large"

        def chunks() -> object:  # no Content-Length: chunked transfer, counted as it arrives
            yield b"--b\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n"
            for _ in range(40):
                yield b"x" * 10_000

        chunked = client.post("/v1/checks", content=chunks(),  # type: ignore[arg-type]
                              headers={**auth, "Content-Type": "multipart/form-data; boundary=b"})
        assert chunked.status_code == 413
        assert chunked.json()["error"]["code"] == "request_too_large"


def test_many_parts_and_broken_multipart_are_4xx(client: TestClient, auth: dict[str, str]) -> None:
    many = [(f"field{i}", (None, b"x")) for i in range(60)]
    assert 400 <= client.post("/v1/checks", files=many, headers=auth).status_code < 500
    files = [("headshots", (f"{i}.jpg", b"\xff\xd8\xff", "image/jpeg")) for i in range(40)]
    assert 400 <= client.post("/v1/checks", files=files, headers=auth).status_code < 500
    no_boundary = client.post("/v1/checks", content=b"--x\r\n", headers={**auth, "Content-Type": "multipart/form-data"})
    assert no_boundary.status_code == 400
    assert no_boundary.json()["error"]["code"] == "bad_request"


def _raw_request(url: str, head: bytes) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(head)
    return sock


def _read_status(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return (int(data.split(b" ", 2)[1]) if data else 0), data


def test_slow_bodies_time_out_with_408(settings: Settings) -> None:
    """A client that stalls, or trickles bytes forever, gets 408 and a closed connection (no hang)."""
    quick = settings.model_copy(update={"body_idle_timeout_s": 0.5, "body_deadline_s": 1.5})
    app = create_app(quick, detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
    with serve_in_thread(app) as url:
        token = app.state.store.create_api_key("slow", [Scope.CHECK])
        head = (f"POST /v1/checks HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n"
                "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n").encode()
        stalled = _raw_request(url, head + b'{"text": "')
        started = time.monotonic()
        status, raw = _read_status(stalled)
        assert status == 408, raw
        assert time.monotonic() - started < 5
        stalled.close()

        trickle = _raw_request(url, head)
        started = time.monotonic()
        for _ in range(100):  # one byte every 0.1 s until the server answers
            if select.select([trickle], [], [], 0.1)[0]:
                break
            trickle.sendall(b" ")
        elapsed = time.monotonic() - started
        trickle.settimeout(10)
        status, raw = _read_status(trickle)
        assert status == 408, raw
        assert 1.0 < elapsed < 5
        trickle.close()


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss xmlns:wp="http://wordpress.org/export/1.2/" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><item><title>&xxe;</title><content:encoded>&xxe;</content:encoded><wp:post_type>post</wp:post_type></item>
</channel></rss>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">]>
<rss><channel><item><title>&lol9;</title></item></channel></rss>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE rss SYSTEM "http://169.254.169.254/latest/meta-data/">
<rss><channel><item><title>x</title></item></channel></rss>"""


@pytest.mark.parametrize("payload", [XXE, BILLION_LAUGHS, EXTERNAL_DTD], ids=["xxe", "billion_laughs", "external_dtd"])
def test_hostile_wxr_is_refused_not_expanded(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "export.xml"
    path.write_bytes(payload)
    started = time.monotonic()
    rows = list(read_rows(path))
    assert time.monotonic() - started < 2
    assert len(rows) == 1
    assert "_error" in rows[0]
    assert "root:" not in repr(rows)
    assert "lollol" not in repr(rows)
