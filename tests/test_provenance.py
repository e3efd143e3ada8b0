"""Provenance readers on real files built here: C2PA-signed JPEGs, XMP, PNG text chunks, EXIF, corrupt input."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import random
import struct
import zlib
from dataclasses import dataclass

import c2pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from detectors.provenance import Finding, FindingKind, Strength, proves_ai, read_provenance, sniff_mime

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


# ---------------------------------------------------------------- builders


def jpeg(size: tuple[int, int] = (64, 64), **save: object) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (120, 90, 60)).save(buf, "JPEG", **save)
    return buf.getvalue()


def png(info: PngInfo | None = None, size: tuple[int, int] = (32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(ctype)))


def png_with_chunk(ctype: bytes, body: bytes) -> bytes:
    """A valid PNG with one extra chunk placed right after IHDR."""
    base = png()
    ihdr_end = 8 + 8 + 13 + 4
    return base[:ihdr_end] + png_chunk(ctype, body) + base[ihdr_end:]


def xmp_packet(inner: str) -> bytes:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f"{inner}</rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def dst_attribute(code: str) -> bytes:
    return xmp_packet(
        '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        f'Iptc4xmpExt:DigitalSourceType="{IPTC}{code}"/>'
    )


def dst_element(code: str) -> bytes:
    return xmp_packet(
        '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
        f"<Iptc4xmpExt:DigitalSourceType>{IPTC}{code}</Iptc4xmpExt:DigitalSourceType></rdf:Description>"
    )


def kinds(findings: list[Finding]) -> set[tuple[FindingKind, Strength]]:
    return {(f.kind, f.strength) for f in findings}


# ---------------------------------------------------------------- C2PA


@dataclass(frozen=True)
class SigningCredentials:
    chain_pem: bytes
    key_pem: bytes
    root_pem: str


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bylinecheck Test CA"),
        ]
    )


def _key_usage(*, signer: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signer,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signer,
        crl_sign=not signer,
        encipher_only=False,
        decipher_only=False,
    )


def _certificate(
    subject: str, issuer: x509.Name, public: ec.EllipticCurvePublicKey, signing: ec.EllipticCurvePrivateKey, ca: bool
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(_key_usage(signer=not ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signing.public_key()), critical=False)
    )
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    return builder.sign(signing, hashes.SHA256())


@pytest.fixture(scope="module")
def credentials() -> SigningCredentials:
    """An ES256 root CA and a leaf signer with the extensions C2PA requires, made fresh for the test run."""
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = _certificate("Test Root", _name("Test Root"), root_key.public_key(), root_key, ca=True)
    leaf = _certificate("Test Signer", root.subject, leaf_key.public_key(), root_key, ca=False)
    pem = serialization.Encoding.PEM
    key = leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return SigningCredentials(leaf.public_bytes(pem) + root.public_bytes(pem), key, root.public_bytes(pem).decode())


def c2pa_jpeg(
    creds: SigningCredentials, source_type: str, generator: str = "bylinecheck-tests", mime: str = "image/jpeg"
) -> bytes:
    manifest = {
        "claim_generator_info": [{"name": generator, "version": "1.0"}],
        "title": "headshot.jpg",
        "format": mime,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": IPTC + source_type}]},
            }
        ],
    }
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, creds.chain_pem, creds.key_pem, None))
    out = io.BytesIO()
    with signer, c2pa.Builder.from_json(json.dumps(manifest)) as builder:
        source = jpeg((96, 96)) if mime == "image/jpeg" else png(size=(96, 96))
        builder.sign(signer, mime, io.BytesIO(source), out)
    return out.getvalue()


def c2pa_findings(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.kind is FindingKind.C2PA]


@pytest.mark.parametrize("mime", ["image/jpeg", "image/png"])
def test_signed_c2pa_declaring_trained_algorithmic_media_proves_ai(credentials: SigningCredentials, mime: str) -> None:
    findings = c2pa_findings(read_provenance(c2pa_jpeg(credentials, "trainedAlgorithmicMedia", mime=mime)))

    assert [(f.value, f.strength) for f in findings] == [("trainedAlgorithmicMedia", Strength.PROVES_AI)]
    assert findings[0].detail["validation_state"] == "Valid"  # sound signature, signer on no trust list
    assert findings[0].detail["issuer"] == "Bylinecheck Test CA"
    assert findings[0].detail["claim_generator"] == "bylinecheck-tests 1.0"
    assert "signed by Bylinecheck Test CA, signature valid" in findings[0].basis


def test_c2pa_signer_in_trust_anchors_is_trusted(credentials: SigningCredentials) -> None:
    data = c2pa_jpeg(credentials, "trainedAlgorithmicMedia")

    [finding] = c2pa_findings(read_provenance(data, trust_anchors_pem=credentials.root_pem))

    assert finding.strength is Strength.PROVES_AI
    assert finding.detail["validation_state"] == "Trusted"
    assert "valid and trusted" in finding.basis


def test_tampered_c2pa_image_is_reported_invalid_and_only_suggests(credentials: SigningCredentials) -> None:
    signed = bytearray(c2pa_jpeg(credentials, "trainedAlgorithmicMedia"))
    signed[-50] ^= 0xFF  # a pixel byte in the entropy-coded scan: the data hash no longer matches

    [finding] = c2pa_findings(read_provenance(bytes(signed)))

    assert finding.strength is Strength.SUGGESTS_AI
    assert finding.detail["validation_state"] == "Invalid"
    assert "dataHash.mismatch" in finding.detail["failures"]
    assert "INVALID" in finding.basis
    assert not proves_ai([finding])


def test_c2pa_digital_capture_suggests_camera(credentials: SigningCredentials) -> None:
    findings = c2pa_findings(read_provenance(c2pa_jpeg(credentials, "digitalCapture")))

    assert [(f.value, f.strength) for f in findings] == [("digitalCapture", Strength.SUGGESTS_CAMERA)]


def test_c2pa_claim_generator_naming_a_generator_suggests_ai(credentials: SigningCredentials) -> None:
    findings = c2pa_findings(read_provenance(c2pa_jpeg(credentials, "digitalCreation", generator="Adobe Firefly")))

    assert [(f.value, f.strength) for f in findings] == [("Adobe Firefly", Strength.SUGGESTS_AI)]


def test_garbage_c2pa_jumbf_gives_no_finding(credentials: SigningCredentials) -> None:
    signed = bytearray(c2pa_jpeg(credentials, "trainedAlgorithmicMedia"))
    start = signed.index(b"\xff\xeb")  # the first APP11 (JUMBF) segment
    rng = random.Random(5)
    for i in range(start + 20, start + 600):
        signed[i] = rng.randrange(256)
    plain = jpeg()
    forged_box = b"\xff\xeb" + struct.pack(">H", 2 + 300) + b"JP\x02\x11" + bytes(rng.randrange(256) for _ in range(296))

    assert c2pa_findings(read_provenance(bytes(signed))) == []
    assert read_provenance(plain[:2] + forged_box + plain[2:]) == []


# ---------------------------------------------------------------- XMP (IPTC digital source type)


@pytest.mark.parametrize("packet", [dst_attribute, dst_element])
def test_xmp_trained_algorithmic_media_proves_ai(packet: object) -> None:
    assert callable(packet)
    data = jpeg(xmp=packet("trainedAlgorithmicMedia"))

    findings = read_provenance(data)

    assert [(f.kind, f.value, f.strength) for f in findings] == [
        (FindingKind.IPTC_DIGITAL_SOURCE_TYPE, "trainedAlgorithmicMedia", Strength.PROVES_AI)
    ]
    assert findings[0].basis.startswith("XMP Iptc4xmpExt:DigitalSourceType")


@pytest.mark.parametrize(
    ("code", "strength"),
    [
        ("compositeWithTrainedAlgorithmicMedia", Strength.SUGGESTS_AI),
        ("algorithmicMedia", Strength.SUGGESTS_AI),
        ("digitalCapture", Strength.SUGGESTS_CAMERA),
    ],
)
def test_xmp_other_source_types(code: str, strength: Strength) -> None:
    assert kinds(read_provenance(jpeg(xmp=dst_attribute(code)))) == {(FindingKind.IPTC_DIGITAL_SOURCE_TYPE, strength)}


def test_xmp_saying_nothing_about_generation_gives_no_finding() -> None:
    assert read_provenance(jpeg(xmp=dst_attribute("humanEdits"))) == []


def test_xmp_in_webp_is_read() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, "WEBP", xmp=dst_element("trainedAlgorithmicMedia"))

    assert kinds(read_provenance(buf.getvalue())) == {(FindingKind.IPTC_DIGITAL_SOURCE_TYPE, Strength.PROVES_AI)}


def test_xmp_in_png_itxt_is_read() -> None:
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", dst_element("trainedAlgorithmicMedia").decode())

    assert kinds(read_provenance(png(info))) == {(FindingKind.IPTC_DIGITAL_SOURCE_TYPE, Strength.PROVES_AI)}


def test_xmp_in_compressed_png_itxt_is_read() -> None:
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", dst_element("compositeWithTrainedAlgorithmicMedia").decode(), zip=True)

    assert kinds(read_provenance(png(info))) == {(FindingKind.IPTC_DIGITAL_SOURCE_TYPE, Strength.SUGGESTS_AI)}


def test_xmp_with_entities_is_refused_not_expanded() -> None:
    bomb = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><!DOCTYPE x [<!ENTITY a "trainedAlgorithmicMedia">'
        b'<!ENTITY e SYSTEM "file:///etc/passwd">]><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
        b"<Iptc4xmpExt:DigitalSourceType>&a;&e;</Iptc4xmpExt:DigitalSourceType></rdf:Description></rdf:RDF></x:xmpmeta>"
    )

    assert read_provenance(jpeg(xmp=bomb)) == []


# ---------------------------------------------------------------- PNG text chunks


def test_png_a1111_parameters_suggest_ai() -> None:
    info = PngInfo()
    info.add_text(
        "parameters",
        "portrait of a journalist\nNegative prompt: blurry\nSteps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7, "
        "Seed: 1234, Size: 512x512, Model hash: abc123, Model: realisticVision_v51",
    )

    [finding] = read_provenance(png(info))

    assert (finding.kind, finding.strength) == (FindingKind.PNG_GENERATOR_TEXT, Strength.SUGGESTS_AI)
    assert finding.value == "AUTOMATIC1111-style web UI parameters"
    assert finding.detail == {"chunk_key": "parameters", "model": "realisticVision_v51"}
    assert "journalist" not in repr(finding)  # prompts are never copied


@pytest.mark.parametrize(
    ("key", "text", "value", "compressed"),
    [
        ("prompt", json.dumps({"3": {"class_type": "KSampler", "inputs": {}}}), "ComfyUI prompt graph", False),
        ("workflow", json.dumps({"nodes": [], "links": [], "last_node_id": 9}), "ComfyUI workflow", True),
        ("invokeai_metadata", "{}", "InvokeAI metadata", False),
        ("Software", "NovelAI", "NovelAI (named in text chunk)", False),
        ("Comment", json.dumps({"steps": 28, "sampler": "k_euler", "uc": "lowres"}), "NovelAI generation settings", True),
    ],
)
def test_png_generator_markers(key: str, text: str, value: str, compressed: bool) -> None:
    info = PngInfo()
    info.add_text(key, text, zip=compressed)

    assert [(f.kind, f.value) for f in read_provenance(png(info))] == [(FindingKind.PNG_GENERATOR_TEXT, value)]


def test_png_ordinary_text_gives_no_finding() -> None:
    info = PngInfo()
    info.add_text("parameters", "exposure=1/200")
    info.add_text("Software", "GIMP 2.10")
    info.add_text("Comment", "holiday")

    assert read_provenance(png(info)) == []


# ---------------------------------------------------------------- EXIF


def exif_jpeg(tags: dict[int, str], user_comment: bytes | None = None) -> bytes:
    exif = Image.Exif()
    for tag, value in tags.items():
        exif[tag] = value
    if user_comment is not None:
        exif.get_ifd(0x8769)[0x9286] = user_comment
    return jpeg(exif=exif.tobytes())


def test_camera_make_and_model_suggest_camera() -> None:
    [finding] = read_provenance(exif_jpeg({0x010F: "Canon", 0x0110: "Canon EOS R5", 0x0131: "Lightroom"}))

    assert (finding.kind, finding.strength, finding.value) == (
        FindingKind.EXIF_CAMERA,
        Strength.SUGGESTS_CAMERA,
        "Canon EOS R5",
    )
    assert finding.detail == {"make": "Canon", "model": "Canon EOS R5"}


def test_png_exif_chunk_is_read() -> None:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "NIKON CORPORATION", "NIKON Z 6"
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "PNG", exif=exif.tobytes())

    assert [(f.kind, f.value) for f in read_provenance(buf.getvalue())] == [
        (FindingKind.EXIF_CAMERA, "NIKON CORPORATION NIKON Z 6")
    ]


@pytest.mark.parametrize(
    ("software", "name"),
    [("Adobe Firefly", "Adobe Firefly"), ("Midjourney v6", "Midjourney"), ("DALL·E 3", "DALL-E")],
)
def test_exif_software_naming_a_generator_suggests_ai(software: str, name: str) -> None:
    assert [(f.kind, f.value, f.strength) for f in read_provenance(exif_jpeg({0x0131: software}))] == [
        (FindingKind.EXIF_SOFTWARE, name, Strength.SUGGESTS_AI)
    ]


def test_exif_ordinary_software_gives_no_finding() -> None:
    assert read_provenance(exif_jpeg({0x0131: "Imagenomic Portraiture 4"})) == []


def test_a1111_parameters_in_exif_user_comment_suggest_ai() -> None:
    comment = b"UNICODE\x00" + "a face\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1".encode("utf-16-be")

    assert kinds(read_provenance(exif_jpeg({}, user_comment=comment))) == {
        (FindingKind.EXIF_GENERATOR_COMMENT, Strength.SUGGESTS_AI)
    }


# ---------------------------------------------------------------- nothing to read, corrupt and oversized input


def test_plain_image_without_metadata_gives_no_finding() -> None:
    assert read_provenance(jpeg()) == []
    assert read_provenance(png()) == []


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image at all",
        b"\xff\xd8\xff",
        b"\x89PNG\r\n\x1a\n",
        bytes(random.Random(1).randrange(256) for _ in range(4096)),
    ],
)
def test_garbage_never_raises(data: bytes) -> None:
    assert read_provenance(data) == []


def test_truncated_png_keeps_chunks_before_the_damage() -> None:
    info = PngInfo()
    info.add_text("parameters", "Steps: 20, Sampler: Euler, CFG scale: 7")
    info.add_text("Comment", "x" * 5000)
    data = png(info)
    cut = data.index(b"xxxx") + 100  # inside the second text chunk

    assert kinds(read_provenance(data[:cut])) == {(FindingKind.PNG_GENERATOR_TEXT, Strength.SUGGESTS_AI)}


def test_png_chunk_with_bad_crc_is_skipped() -> None:
    data = bytearray(png_with_chunk(b"tEXt", b"parameters\x00Steps: 20, Sampler: Euler, CFG scale: 7"))
    data[40] ^= 0x01  # inside the tEXt body

    assert read_provenance(bytes(data)) == []


def test_garbage_app1_xmp_gives_no_finding() -> None:
    rng = random.Random(2)
    junk = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta " + bytes(rng.randrange(256) for _ in range(2000))
    plain = jpeg()
    segment = b"\xff\xe1" + struct.pack(">H", len(junk) + 2) + junk

    assert read_provenance(plain[:2] + segment + plain[2:]) == []


def test_unreadable_metadata_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="detectors.provenance")
    bad = xmp_packet("<rdf:Description>unclosed")

    assert read_provenance(jpeg(xmp=bad)) == []
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "unreadable XMP packet" in caplog.text


def test_five_megabyte_xmp_is_ignored() -> None:
    padding = "<rdf:Description>" + " " * 5_000_000 + "</rdf:Description>"
    packet = dst_attribute("trainedAlgorithmicMedia").replace(b"</rdf:RDF>", padding.encode() + b"</rdf:RDF>")
    body = b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + packet

    assert len(packet) > 5_000_000
    assert read_provenance(png_with_chunk(b"iTXt", body)) == []


def test_zip_bomb_text_chunk_is_capped() -> None:
    body = b"parameters\x00\x00" + zlib.compress(b"Steps: 1, Sampler: x" + b"\x00" * 50_000_000, 9)

    assert read_provenance(png_with_chunk(b"zTXt", body)) == []


def test_random_mutations_of_marked_files_never_raise(credentials: SigningCredentials) -> None:
    info = PngInfo()
    info.add_text("parameters", "Steps: 20, Sampler: Euler, CFG scale: 7")
    originals = [c2pa_jpeg(credentials, "trainedAlgorithmicMedia"), png(info), jpeg(xmp=dst_element("digitalCapture"))]
    rng = random.Random(3)
    for _ in range(60):
        data = bytearray(rng.choice(originals))
        for _ in range(rng.randrange(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        assert isinstance(read_provenance(bytes(data[: rng.randrange(len(data) + 1)])), list)


def test_sniff_mime() -> None:
    assert sniff_mime(jpeg()) == "image/jpeg"
    assert sniff_mime(png()) == "image/png"
    assert sniff_mime(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_mime(b"\x00\x00\x00\x18ftypheic") == "image/heic"
    assert sniff_mime(b"hello") is None
