"""The one error hierarchy of the engine. Faces map each class to a status and an envelope.

    CairnError
    ├── InvalidInput          bad request data (names the offending parameter)
    ├── NotFound              no such object for this tenant (never "exists elsewhere")
    ├── TooLarge              body or declared size over the configured maximum
    ├── InsufficientStorage   not enough free space to accept the bytes
    ├── Unauthenticated       missing, malformed, unknown or revoked API key
    ├── RequestTimeout        the client stopped sending the body
    └── Unavailable           a dependency (database, storage) cannot serve now

Every class carries a stable ``code`` used in envelopes, logs and metrics.
"""

from __future__ import annotations


class CairnError(Exception):
    code = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidInput(CairnError):
    code = "invalid_request"


class NotFound(CairnError):
    code = "not_found"


class TooLarge(CairnError):
    code = "too_large"


class InsufficientStorage(CairnError):
    code = "insufficient_storage"


class Unauthenticated(CairnError):
    code = "invalid_api_key"


class RequestTimeout(CairnError):
    code = "request_timeout"


class Unavailable(CairnError):
    code = "unavailable"
