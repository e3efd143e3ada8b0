"""Generator markers in PNG text chunks (tEXt, zTXt, iTXt).

Caveats first: these chunks are unsigned and are lost on any re-encode, so a marker only *suggests* AI; their
absence says nothing. The chunk walker is our own (not Pillow's) so that a truncated file still yields the
chunks before the damage, a chunk with a bad CRC is skipped, and limits are ours: chunks over
:data:`MAX_TEXT_CHUNK_BYTES` (compressed or not) are ignored, and at most :data:`MAX_CHUNKS` chunks are walked.

Markers (key: condition on the value -> generator reported):

=======================  ==========================================================  =========================
key                      condition on the text                                       generator
=======================  ==========================================================  =========================
``parameters``           contains ``Steps:`` and ``Sampler:`` or ``CFG scale:``      AUTOMATIC1111 / Forge /
                                                                                     SD.Next web UI
``parameters``           JSON object with ``sui_image_params``                       SwarmUI
``parameters``           JSON object mentioning ``Fooocus``                          Fooocus
``fooocus_scheme``       present                                                     Fooocus
``prompt``               JSON object whose nodes have ``class_type``                 ComfyUI (API prompt)
``workflow``             JSON object with ``nodes`` and ``links``                    ComfyUI (workflow)
``invokeai_metadata``    present                                                     InvokeAI (3.x+)
``invokeai_graph``       present                                                     InvokeAI (3.x+)
``sd-metadata``          present                                                     InvokeAI (2.x)
``Dream``                present                                                     InvokeAI (lstein "dream")
``Comment``              JSON object with ``steps`` and ``sampler``                  NovelAI
``Software``/``Source``  names a generator (see :mod:`.generators`)                  that generator
=======================  ==========================================================  =========================

Prompts are never copied into findings; only the model name of A1111 parameters (``Model: ...``) is kept.
"""

from __future__ import annotations

import json
import logging
import re
import struct
import zlib
from collections.abc import Callable, Iterator

from .findings import Finding, FindingKind, Strength
from .generators import generator_name

logger = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_TEXT_CHUNK_BYTES = 2_000_000
MAX_CHUNKS = 10_000
_TEXT_TYPES = (b"tEXt", b"zTXt", b"iTXt")
_CHECKED_TYPES = (*_TEXT_TYPES, b"eXIf")  # only these are copied and CRC-checked; pixel data is skipped
_A1111_MODEL = re.compile(r"(?:^|, )Model: ([^,\n]{1,100})")


def png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, body) of each chunk with a good CRC, in file order; stops quietly at the first truncated chunk."""
    if not data.startswith(PNG_SIGNATURE):
        return
    offset = len(PNG_SIGNATURE)
    for _ in range(MAX_CHUNKS):
        if offset + 12 > len(data):
            return
        length, ctype = struct.unpack(">I4s", data[offset : offset + 8])
        body_end = offset + 8 + length
        if body_end + 4 > len(data):
            logger.debug("truncated PNG chunk %r: stopped reading", ctype)
            return
        if ctype in _CHECKED_TYPES:
            body = data[offset + 8 : body_end]
            if _crc_ok(ctype, body, data[body_end : body_end + 4]):
                yield ctype, body
        if ctype == b"IEND":
            return
        offset = body_end + 4


def png_text_chunks(data: bytes) -> Iterator[tuple[str, str]]:
    """(key, text) of each readable text chunk, in file order."""
    for ctype, body in png_chunks(data):
        entry = _text_entry(ctype, body) if ctype in _TEXT_TYPES else None
        if entry is not None:
            yield entry


def _crc_ok(ctype: bytes, body: bytes, crc: bytes) -> bool:
    if zlib.crc32(body, zlib.crc32(ctype)) == struct.unpack(">I", crc)[0]:
        return True
    logger.debug("PNG %r chunk with a bad CRC skipped", ctype)
    return False


def _text_entry(ctype: bytes, body: bytes) -> tuple[str, str] | None:
    """Decode one text chunk; None when oversized or malformed."""
    if len(body) > MAX_TEXT_CHUNK_BYTES or b"\x00" not in body:
        return None
    raw_key, rest = body.split(b"\x00", 1)
    key = raw_key.decode("latin-1")
    try:
        if ctype == b"tEXt":
            return key, rest.decode("latin-1")
        if ctype == b"zTXt":
            return key, _inflate(rest[1:]).decode("latin-1")
        return key, _itxt_text(rest)
    except (ValueError, zlib.error) as exc:
        logger.debug("malformed PNG %r chunk skipped: %s", ctype, type(exc).__name__)
        return None


def _itxt_text(rest: bytes) -> str:
    compressed, _method = rest[0], rest[1]
    _language, _translated, text = rest[2:].split(b"\x00", 2)
    return (_inflate(text) if compressed else text).decode("utf-8")


def _inflate(payload: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(payload, MAX_TEXT_CHUNK_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError("decompressed text chunk over the cap")
    return out


def _json_object(text: str) -> dict[str, object] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _a1111(text: str) -> str | None:
    if "Steps:" in text and ("Sampler:" in text or "CFG scale:" in text):
        return "AUTOMATIC1111-style web UI parameters"
    obj = _json_object(text)
    if obj is None:
        return None
    if "sui_image_params" in obj:
        return "SwarmUI parameters"
    return "Fooocus parameters" if "fooocus" in text[:4096].lower() else None


def _comfy_prompt(text: str) -> str | None:
    obj = _json_object(text)
    nodes = [v for v in obj.values() if isinstance(v, dict)] if obj else []
    return "ComfyUI prompt graph" if nodes and all("class_type" in n for n in nodes) else None


def _comfy_workflow(text: str) -> str | None:
    obj = _json_object(text)
    return "ComfyUI workflow" if obj is not None and "nodes" in obj and "links" in obj else None


def _novelai_comment(text: str) -> str | None:
    obj = _json_object(text)
    return "NovelAI generation settings" if obj is not None and "steps" in obj and "sampler" in obj else None


def _present(label: str) -> Callable[[str], str | None]:
    return lambda _text: label


def _named_generator(text: str) -> str | None:
    name = generator_name(text[:200])
    return f"{name} (named in text chunk)" if name else None


_MARKERS: dict[str, Callable[[str], str | None]] = {
    "parameters": _a1111,
    "fooocus_scheme": _present("Fooocus"),
    "prompt": _comfy_prompt,
    "workflow": _comfy_workflow,
    "invokeai_metadata": _present("InvokeAI metadata"),
    "invokeai_graph": _present("InvokeAI graph"),
    "sd-metadata": _present("InvokeAI 2.x metadata"),
    "Dream": _present("InvokeAI dream prompt"),
    "Comment": _novelai_comment,
    "Software": _named_generator,
    "Source": _named_generator,
}


def read_png_text(data: bytes) -> list[Finding]:
    """Findings from generator markers in a PNG's text chunks (nothing for other formats)."""
    findings: list[Finding] = []
    for key, text in png_text_chunks(data):
        marker = _MARKERS.get(key)
        value = marker(text) if marker else None
        if value is not None:
            findings.append(_finding(key, value, text))
    return findings


def _finding(key: str, value: str, text: str) -> Finding:
    detail = {"chunk_key": key}
    model = _A1111_MODEL.search(text[:20_000]) if key == "parameters" else None
    if model:
        detail["model"] = model.group(1).strip()
    return Finding(
        kind=FindingKind.PNG_GENERATOR_TEXT,
        value=value,
        strength=Strength.SUGGESTS_AI,
        basis=f"PNG text chunk '{key}' (unsigned metadata)",
        detail=detail,
    )
