"""C2PA Content Credentials, read with c2pa-python.

Caveats first: a C2PA signature proves who signed the manifest and that the image has not changed since, not
that the statements in it are true. Without a trust list configured (``trust_anchors_pem``) the SDK reports a
cryptographically sound manifest as ``Valid`` (signer untrusted) rather than ``Trusted``; we treat both as a valid
signature because a false declaration of AI generation is not what a forger of fake bylines wants, and we record
which one it was in ``detail["validation_state"]``. Remote manifests and OCSP are never fetched (no network).

Rules, on the active manifest's ``c2pa.actions`` digital source types (see :mod:`.findings` for the codes):

- valid or trusted signature: the code's own strength (``trainedAlgorithmicMedia`` -> proves_ai);
- invalid signature (tampered asset, broken chain): AI codes are reported as suggests_ai with the failure codes;
  camera codes are dropped (a broken camera credential is no evidence of a camera);
- no source type, but a claim generator that names an image generator: suggests_ai;
- a source type declared only by an ingredient's manifest (the image was edited from it): at most suggests_ai.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from .findings import Finding, FindingKind, Strength, source_type_code, source_type_strength
from .generators import generator_name

logger = logging.getLogger(__name__)

VALID_STATES = ("Valid", "Trusted")


@lru_cache(maxsize=4)
def _context(trust_anchors_pem: str | None) -> Any:
    import c2pa

    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if trust_anchors_pem:
        settings["trust"] = {"trust_anchors": trust_anchors_pem}
    return c2pa.Context.from_dict(settings)


def read_manifest_store(data: bytes, mime: str, trust_anchors_pem: str | None = None) -> dict[str, Any] | None:
    """The manifest store as parsed JSON (with ``validation_state``), or None when the asset has none.

    Raises ``c2pa.C2paError`` on unreadable manifests (the caller logs and moves on).
    """
    import c2pa

    reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, _context(trust_anchors_pem))
    if reader is None:
        return None
    with reader:
        store: dict[str, Any] = json.loads(reader.json())
    return store


def read_c2pa(data: bytes, mime: str, trust_anchors_pem: str | None = None) -> list[Finding]:
    """Findings from the C2PA manifest store embedded in ``data`` (of MIME type ``mime``)."""
    store = read_manifest_store(data, mime, trust_anchors_pem)
    if not store:
        return []
    manifests: Mapping[str, Any] = store.get("manifests") or {}
    active = manifests.get(store.get("active_manifest", ""))
    if not isinstance(active, dict):
        return []
    state = str(store.get("validation_state") or "Invalid")
    context = _Context(active, state, _failure_codes(store))
    findings = [f for code in source_types(active) if (f := context.declared(code)) is not None]
    if not findings:
        findings += context.named_generator()
    for label, manifest in manifests.items():
        if label != store.get("active_manifest") and isinstance(manifest, dict):
            findings += [f for code in source_types(manifest) if (f := context.ingredient(code)) is not None]
    return findings


def source_types(manifest: Mapping[str, Any]) -> list[str]:
    """Digital source types declared by the actions of one manifest."""
    codes: list[str] = []
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict) or not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            if isinstance(action, dict) and isinstance(action.get("digitalSourceType"), str):
                codes.append(action["digitalSourceType"])
    return codes


def claim_generator(manifest: Mapping[str, Any]) -> str:
    """The claim generator's name (C2PA v2 ``claim_generator_info`` or v1 ``claim_generator``)."""
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict):
        return f"{info[0].get('name', '')} {info[0].get('version', '')}".strip()
    return str(manifest.get("claim_generator") or "")


def _failure_codes(store: Mapping[str, Any]) -> list[str]:
    results = ((store.get("validation_results") or {}).get("activeManifest") or {}).get("failure") or []
    statuses = results or store.get("validation_status") or []
    return [str(s.get("code")) for s in statuses if isinstance(s, dict)]


class _Context:
    """What every finding from one manifest store shares: signer, validity and the detail strings."""

    def __init__(self, active: Mapping[str, Any], state: str, failures: list[str]) -> None:
        signature = active.get("signature_info") or {}
        self.issuer = str(signature.get("issuer") or "an unknown issuer")
        self.valid = state in VALID_STATES
        self.generator = claim_generator(active)
        self.detail = {
            "validation_state": state,
            "issuer": self.issuer,
            "signer": str(signature.get("common_name") or ""),
            "alg": str(signature.get("alg") or ""),
            "claim_generator": self.generator,
            "failures": ",".join(failures[:10]),
        }

    def basis(self, what: str) -> str:
        validity = {"Trusted": "valid and trusted", "Valid": "valid (signer not on a trust list)"}
        state = validity.get(self.detail["validation_state"], "INVALID")
        return f"C2PA manifest signed by {self.issuer}, signature {state}; {what}"

    def declared(self, code: str) -> Finding | None:
        strength = source_type_strength(code)
        if strength is None or (not self.valid and strength is Strength.SUGGESTS_CAMERA):
            return None
        if not self.valid:
            strength = Strength.SUGGESTS_AI
        return self._finding(source_type_code(code), strength, "an action declares this digitalSourceType")

    def ingredient(self, code: str) -> Finding | None:
        strength = source_type_strength(code)
        if strength not in (Strength.PROVES_AI, Strength.SUGGESTS_AI):
            return None
        return self._finding(source_type_code(code), Strength.SUGGESTS_AI, "an ingredient's manifest declares it")

    def named_generator(self) -> list[Finding]:
        name = generator_name(self.generator)
        if name is None:
            return []
        return [self._finding(name, Strength.SUGGESTS_AI, "the claim generator names an image generator")]

    def _finding(self, value: str, strength: Strength, what: str) -> Finding:
        return Finding(FindingKind.C2PA, value, strength, self.basis(what), dict(self.detail))
