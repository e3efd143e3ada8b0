"""Hypothesis against every parser of untrusted bytes, time-boxed (``max_examples``; more with
``BYLINECHECK_LONG_TESTS=1``). The property is the same everywhere: a parser answers or refuses with its
own error, it never crashes with anything else.

- images: ``service.inputs.decode_image`` -> DecodedImage or a BadInputError (4xx)
- metadata: ``detectors.provenance.read_provenance`` never raises
- archives: ``service.audit.readers.read_rows`` (WXR, Ghost, JSONL, CSV) yields dict rows, never raises
- webhooks: signature checks raise only their 401s; payload extraction only its 422
- text normalisation: every offset maps back into the submitted text
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from detectors.provenance import read_provenance
from service.audit.readers import ArchiveFormat, read_rows
from service.config import Settings
from service.errors import BadInputError
from service.inputs import decode_image
from service.webhooks.errors import InvalidPayloadError, InvalidSignatureError, MissingSignatureError, StaleTimestampError
from service.webhooks.payloads import extract
from service.webhooks.signatures import verify_ghost, verify_standard
from tests.fakes import portrait_bytes

LONG = os.environ.get("BYLINECHECK_LONG_TESTS") == "1"
FUZZ = settings(max_examples=2000 if LONG else 150, deadline=None, derandomize=not LONG, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LIMITS = Settings(max_image_pixels=4_000_000)


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


_RNG = np.random.default_rng(3)
SEEDS = [
    portrait_bytes(2, size=64),
    _encode(Image.fromarray(_RNG.integers(0, 255, (24, 24, 4), dtype=np.uint8)), "PNG"),
    _encode(Image.fromarray(_RNG.integers(0, 255, (24, 24, 3), dtype=np.uint8)), "WEBP"),
    _encode(Image.new("RGB", (16, 16), (1, 2, 3)), "WEBP", lossless=True),
    _encode(Image.new("RGB", (16, 16)), "JPEG", exif=Image.Exif()),
]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a few bytes overwritten, a slice cut out or inserted, or cut short."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:
            data = data[:at]
    return bytes(data)


def _decode_or_refuse(data: bytes) -> None:
    try:
        image = decode_image(data, LIMITS)
    except BadInputError as exc:
        status = exc.status_code
        assert 400 <= status < 500
        return
    assert image.pixels.ndim == 3
    assert image.pixels.shape[2] == 3
    assert image.width * image.height <= LIMITS.max_image_pixels


@FUZZ
@given(mutated(SEEDS))
def test_decode_image_answers_or_refuses_mutated_images(data: bytes) -> None:
    _decode_or_refuse(data)


@FUZZ
@given(st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBP"]), st.binary(max_size=512))
def test_decode_image_answers_or_refuses_random_bytes_after_a_magic(magic: bytes, rest: bytes) -> None:
    _decode_or_refuse(magic + rest)


@FUZZ
@given(st.one_of(mutated(SEEDS), st.binary(max_size=1024)))
def test_read_provenance_never_raises(data: bytes) -> None:
    findings = read_provenance(data)
    assert isinstance(findings, list)


WXR_SEED = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/"
 xmlns:wp="http://wordpress.org/export/1.2/"><channel>
<wp:author><wp:author_login>jd</wp:author_login><wp:author_display_name>Jane Doe</wp:author_display_name></wp:author>
<item><title>Council</title><dc:creator>jd</dc:creator><wp:post_id>7</wp:post_id><wp:post_type>post</wp:post_type>
<wp:status>publish</wp:status><content:encoded><![CDATA[<p>The council met.</p>]]></content:encoded>
<wp:postmeta><wp:meta_key>headshot_url</wp:meta_key><wp:meta_value>https://x.example/a.jpg</wp:meta_value></wp:postmeta>
</item></channel></rss>"""
GHOST_SEED = json.dumps({"db": [{"data": {"posts": [{"id": "p1", "title": "T", "html": "<p>Hi there</p>", "type": "post"}],
                                          "users": [{"id": "u1", "name": "Jo", "profile_image": "https://x.example/j.png"}],
                                          "posts_authors": [{"post_id": "p1", "author_id": "u1", "sort_order": 0}]}}]}).encode()
JSONL_SEED = b'{"id": "1", "text": "Hello world", "byline": "A"}\n{"id": "2", "headshots": ["a.jpg"]}\n'
CSV_SEED = b"id,text,byline,headshots\n1,Hello world,A,a.jpg;b.jpg\n2,\"quoted, text\",B,\n"
ARCHIVES = {ArchiveFormat.WXR: WXR_SEED, ArchiveFormat.GHOST: GHOST_SEED, ArchiveFormat.JSONL: JSONL_SEED,
            ArchiveFormat.CSV: CSV_SEED}


@FUZZ
@given(st.sampled_from(sorted(ARCHIVES)), st.data())
def test_archive_readers_yield_rows_never_raise(fmt: ArchiveFormat, data: st.DataObject) -> None:
    payload = data.draw(st.one_of(mutated([ARCHIVES[fmt]]), st.binary(max_size=300)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"archive.{fmt.value}"
        path.write_bytes(payload)
        for explicit in (fmt, ArchiveFormat.AUTO):
            rows = list(read_rows(path, explicit))
            assert all(isinstance(row, dict) for row in rows)


HEADER_NAMES = st.sampled_from(["x-ghost-signature", "webhook-id", "webhook-timestamp", "webhook-signature"])


@FUZZ
@given(st.dictionaries(HEADER_NAMES, st.text(max_size=120)), st.binary(max_size=200))
def test_signature_checks_refuse_only_with_their_own_errors(headers: dict[str, str], body: bytes) -> None:
    for verify, secret in ((verify_ghost, "ghost-secret"), (verify_standard, "whsec_c2VjcmV0LWJ5dGVz")):
        try:
            verify(headers, body, [secret], 300)
        except (MissingSignatureError, InvalidSignatureError, StaleTimestampError):
            continue
        raise AssertionError(f"{verify.__name__} accepted forged headers {headers!r}")


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
                        ["post", "current", "data", "author", "html", "text", "title", "byline", "id", "headshot",
                         "headshot_url", "primary_author", "authors", "name", "profile_image", "content", "type",
                         "plaintext", "status", "avatar_url", "filename"]) | st.text(max_size=8), inner, max_size=5),
                    max_leaves=20)


@FUZZ
@given(st.sampled_from(["ghost", "wordpress", "standard"]), st.one_of(JSON.map(lambda v: json.dumps(v).encode()),
                                                                      st.binary(max_size=200)))
def test_webhook_payloads_parse_or_refuse_with_422(source: str, body: bytes) -> None:
    try:
        article = extract(source, body)
    except InvalidPayloadError:
        return
    assert article.text is not None or article.headshot_b64 is not None or article.headshot_url is not None


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
       | st.lists(st.sampled_from(["a", "e", "\u0430", "\u0435", "\u200b", "\ufb01", "\u2460", "é", "e\u0301", " ", ".",
                                   "\u202e", "東"]), max_size=80).map("".join))
def test_text_normalisation_keeps_offsets_into_the_submitted_text(text: str) -> None:
    import pytest

    normalise = pytest.importorskip("detectors.text.normalise")
    norm = normalise.normalise(text)
    assert len(norm.origin) == len(norm.text)
    assert all(0 <= i < len(text) for i in norm.origin)
    assert list(norm.origin) == sorted(norm.origin)
    if norm.text:
        start, end = norm.span_to_original(0, len(norm.text))
        assert 0 <= start < end <= len(text)


def test_wxr_declaring_an_unknown_encoding_is_one_error_row(tmp_path: Path) -> None:
    """Found by the fuzzer: expat raises LookupError (not a ParseError) for ``encoding="TF-8"``."""
    from service.audit.wxr import read_wxr

    path = tmp_path / "export.xml"
    path.write_bytes(b'<?xml version="1.0" encoding="TF-8"?>\n<rss version="2.0"><channel></channel></rss>')
    rows = list(read_wxr(path))
    assert len(rows) == 1
    assert rows[0]["_error"] == "WXR could not be read: LookupError"
