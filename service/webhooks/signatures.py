"""Webhook signatures: Ghost's ``X-Ghost-Signature`` and the Standard Webhooks scheme (both ways).

Caveats first: verification runs on the raw body bytes, before any parsing; every comparison is
constant-time (:func:`hmac.compare_digest`); a timestamp outside ``tolerance_s`` is refused even when
the signature is good; each source may have several secrets (rotation) and any one may match.

- Ghost: ``X-Ghost-Signature: sha256=<hex>, t=<ms>`` with hex = HMAC-SHA256(secret, body + str(t))
  (Ghost's ``webhook-trigger.js``). Ghost sends no event id: the signature itself identifies the delivery
  (Ghost's own retries resend the same body and header, so they deduplicate).
- Standard Webhooks: ``webhook-id``, ``webhook-timestamp`` (s), ``webhook-signature: v1,<base64> ...``
  over ``"{id}.{timestamp}.{body}"`` with the key from ``whsec_<base64>``.

Raises :class:`MissingSignatureError`, :class:`InvalidSignatureError`, :class:`StaleTimestampError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from service.webhooks.errors import InvalidSignatureError, MissingSignatureError, StaleTimestampError

SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class VerifiedDelivery:
    """Who sent it (source) and the id we deduplicate on."""

    event_id: str
    timestamp_s: float


def secret_key(secret: str) -> bytes:
    """``whsec_<base64>`` -> the key bytes; any other string is used as UTF-8 (Ghost secrets)."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a whsec_ secret must be base64 after the prefix") from None
    return secret.encode()


def new_secret() -> str:
    """A fresh Standard Webhooks secret (24 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _is_timestamp(value: str) -> bool:
    """ASCII digits only (``str.isdigit`` also takes '²' and other digits ``int`` refuses), and a sane length."""
    return 0 < len(value) <= 20 and value.isascii() and value.isdigit()


def _check_time(timestamp_s: float, tolerance_s: float, now: float | None) -> None:
    if abs((time.time() if now is None else now) - timestamp_s) > tolerance_s:
        raise StaleTimestampError(f"timestamp is more than {tolerance_s:g} s away from now")


def verify_ghost(headers: Mapping[str, str], body: bytes, secrets_: Sequence[str], tolerance_s: float,
                 now: float | None = None) -> VerifiedDelivery:
    header = headers.get("x-ghost-signature")
    if not header:
        raise MissingSignatureError("X-Ghost-Signature is missing")
    parts = dict(p.strip().partition("=")[::2] for p in header.split(","))
    digest, ts = parts.get("sha256", ""), parts.get("t", "")
    if not digest or not _is_timestamp(ts):
        raise InvalidSignatureError("X-Ghost-Signature must be 'sha256=<hex>, t=<ms>'")
    ok = False
    for secret in secrets_:
        expected = hmac.new(secret_key(secret), body + ts.encode(), hashlib.sha256).hexdigest()
        ok |= hmac.compare_digest(expected.encode(), digest.lower().encode())
    if not ok:
        raise InvalidSignatureError("signature does not match any configured secret")
    _check_time(int(ts) / 1000.0, tolerance_s, now)
    return VerifiedDelivery(event_id=f"ghost_{digest.lower()[:64]}", timestamp_s=int(ts) / 1000.0)


def standard_signature(key: bytes, msg_id: str, timestamp_s: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one message."""
    mac = hmac.new(key, f"{msg_id}.{timestamp_s}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def sign_standard(secret: str, msg_id: str, body: bytes, timestamp_s: int | None = None) -> dict[str, str]:
    """Headers for an outgoing Standard Webhooks message."""
    ts = int(time.time()) if timestamp_s is None else timestamp_s
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": standard_signature(secret_key(secret), msg_id, ts, body)}


def verify_standard(headers: Mapping[str, str], body: bytes, secrets_: Sequence[str], tolerance_s: float,
                    now: float | None = None) -> VerifiedDelivery:
    msg_id, ts, header = (headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not header:
        raise MissingSignatureError("webhook-signature is missing")
    if not msg_id or not ts or not _is_timestamp(ts) or len(msg_id) > 200:
        raise InvalidSignatureError("webhook-id and a numeric webhook-timestamp are required")
    given = [s.partition(",")[2] for s in header.split() if s.startswith("v1,")]
    ok = False
    for secret in secrets_:
        expected = standard_signature(secret_key(secret), msg_id, int(ts), body).partition(",")[2]
        for candidate in given:
            ok |= hmac.compare_digest(expected.encode(), candidate.encode())
    if not ok:
        raise InvalidSignatureError("signature does not match any configured secret")
    _check_time(int(ts), tolerance_s, now)
    return VerifiedDelivery(event_id=msg_id, timestamp_s=float(ts))
