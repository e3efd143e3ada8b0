"""One exception tree, rendered by one handler into one JSON error shape.

::

    ServiceError (500, internal_error)
    ├── BadInputError (400/413/415/422)  bad text, image, request
    │   ├── EmptyTextError           400 empty_text
    │   ├── TextTooLongError         413 text_too_long
    │   ├── InvalidEncodingError     400 invalid_encoding
    │   ├── ImageTooLargeError       413 image_too_large
    │   ├── DecompressionBombError   413 decompression_bomb
    │   ├── UnsupportedImageError    415 unsupported_image_type
    │   ├── CorruptImageError        422 corrupt_image
    │   ├── TooManyHeadshotsError    413 too_many_headshots
    │   ├── RequestTooLargeError     413 request_too_large
    │   ├── RequestTimeoutError      408 request_timeout (the body trickled in too slowly)
    │   └── InvalidRequestError      422 invalid_request
    ├── AuthError                    401 unauthorized
    ├── ForbiddenError               403 forbidden
    ├── NotFoundError                404 not_found
    ├── ConflictError                409 conflict
    ├── OverloadedError              429 overloaded (Retry-After)
    ├── DeadlineExceededError        504 deadline_exceeded
    ├── UnavailableError             503 unavailable
    │   └── StoreBusyError           503 store_busy (Retry-After): the database stayed locked past its busy timeout
    └── StoreFullError               507 store_full: the database (or its disk) is full

Webhook branches (missing_signature, invalid_signature, stale_timestamp, unknown_source, invalid_payload,
unsafe_url, fetch_refused, fetch_failed) live in ``service/webhooks/errors.py``.
"""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str = "", *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.headers = headers or {}


class BadInputError(ServiceError):
    status_code = 400
    code = "bad_input"


class EmptyTextError(BadInputError):
    code = "empty_text"


class TextTooLongError(BadInputError):
    status_code = 413
    code = "text_too_long"


class InvalidEncodingError(BadInputError):
    code = "invalid_encoding"


class ImageTooLargeError(BadInputError):
    status_code = 413
    code = "image_too_large"


class DecompressionBombError(BadInputError):
    status_code = 413
    code = "decompression_bomb"


class UnsupportedImageError(BadInputError):
    status_code = 415
    code = "unsupported_image_type"


class CorruptImageError(BadInputError):
    status_code = 422
    code = "corrupt_image"


class TooManyHeadshotsError(BadInputError):
    status_code = 413
    code = "too_many_headshots"


class RequestTooLargeError(BadInputError):
    status_code = 413
    code = "request_too_large"


class RequestTimeoutError(BadInputError):
    status_code = 408
    code = "request_timeout"


class InvalidRequestError(BadInputError):
    status_code = 422
    code = "invalid_request"


class AuthError(ServiceError):
    status_code = 401
    code = "unauthorized"


class ForbiddenError(ServiceError):
    status_code = 403
    code = "forbidden"


class NotFoundError(ServiceError):
    status_code = 404
    code = "not_found"


class ConflictError(ServiceError):
    status_code = 409
    code = "conflict"


class OverloadedError(ServiceError):
    status_code = 429
    code = "overloaded"


class DeadlineExceededError(ServiceError):
    status_code = 504
    code = "deadline_exceeded"


class UnavailableError(ServiceError):
    status_code = 503
    code = "unavailable"


class StoreBusyError(UnavailableError):
    code = "store_busy"


class StoreFullError(ServiceError):
    status_code = 507
    code = "store_full"
