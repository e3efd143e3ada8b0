"""Webhook errors: branches of the one :mod:`service.errors` tree, with stable codes.

::

    AuthError (401)
    ├── MissingSignatureError   401 missing_signature
    ├── InvalidSignatureError   401 invalid_signature
    └── StaleTimestampError     401 stale_timestamp
    NotFoundError (404)
    └── UnknownSourceError      404 unknown_source
    InvalidRequestError (422)
    ├── InvalidPayloadError     422 invalid_payload
    ├── UnsafeUrlError          422 unsafe_url       (private address, host not allowed, bad scheme)
    └── FetchRefusedError       422 fetch_refused    (the URL answered 4xx: retrying will not help)
    UnavailableError (503)
    └── FetchError              503 fetch_failed     (timeout, too large, non-2xx: worth a retry)
"""

from __future__ import annotations

from service.errors import AuthError, InvalidRequestError, NotFoundError, UnavailableError


class MissingSignatureError(AuthError):
    code = "missing_signature"


class InvalidSignatureError(AuthError):
    code = "invalid_signature"


class StaleTimestampError(AuthError):
    code = "stale_timestamp"


class UnknownSourceError(NotFoundError):
    code = "unknown_source"


class InvalidPayloadError(InvalidRequestError):
    code = "invalid_payload"


class UnsafeUrlError(InvalidRequestError):
    code = "unsafe_url"


class FetchRefusedError(InvalidRequestError):
    code = "fetch_refused"


class FetchError(UnavailableError):
    code = "fetch_failed"
