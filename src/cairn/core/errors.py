"""The one error hierarchy of the engine. Faces map each class to a status and an envelope.

    CairnError
    ├── InvalidInput          bad request data (names the offending parameter)
    │   ├── ChecksumMismatch  the bytes do not hash to the declared digest (staged bytes are kept)
    │   ├── ContextLengthExceeded  the prompt or an input does not fit the model's window
    │   ├── UnsupportedFile   a file of a kind whose text Cairn cannot read (by its name and type)
    │   ├── InvalidFile       a file of a readable kind that is broken, encrypted, or has too much text
    │   └── VectorStoreExpired  a search of, or a file for, a vector store that expired (its chunks went)
    ├── NotFound              no such object for this tenant (never "exists elsewhere")
    │   └── ModelNotFound     no such model for this tenant
    ├── TooLarge              body or declared size over the configured maximum
    ├── InsufficientStorage   not enough free space to accept the bytes
    ├── Conflict              the request contradicts the current state
    │   ├── OffsetMismatch    an append at the wrong offset (carries the current one)
    │   ├── UploadCompleted   an append to an upload that is already complete
    │   └── UploadInterrupted a newer request for the upload stopped this append (carries the offset)
    ├── Locked                another request holds the upload and did not let go in time
    ├── Unauthenticated       missing, malformed, unknown or revoked API key
    ├── Forbidden             refused whoever asks (open mode and browsers)
    │   ├── HostNotAllowed    a Host that is not a loopback name, without API keys
    │   └── CrossSiteRequest  a state-changing request from another site's page, without API keys
    ├── RequestTimeout        the client stopped sending the body
    ├── FailedDependency      a server the request names failed it (an MCP server that cannot list its tools)
    │   └── McpServerError    an MCP server unreachable, refusing, or silent too long (carries the error)
    ├── RateLimited           the tenant spent its budget for this kind of request (carries the retry delay)
    │   └── Busy              every slot of the model is taken and its queue is full
    └── Unavailable           a dependency (database, storage, Redis, a model runtime) cannot serve now
        ├── UpstreamFailed    a remote model server answered with an error or nonsense
        └── UpstreamTimeout   a remote model server did not answer in time

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


class ChecksumMismatch(InvalidInput):
    code = "checksum_mismatch"


class ContextLengthExceeded(InvalidInput):
    code = "context_length_exceeded"


class UnsupportedFile(InvalidInput):
    code = "unsupported_file"  # OpenAI's vector_store.file last_error codes


class InvalidFile(InvalidInput):
    code = "invalid_file"


class VectorStoreExpired(InvalidInput):
    code = "vector_store_expired"


class NotFound(CairnError):
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(CairnError):
    code = "conflict"


class OffsetMismatch(Conflict):
    code = "offset_mismatch"

    def __init__(self, current: int, sent: int) -> None:
        super().__init__(f"The upload is at offset {current}, not {sent}.", param="offset")
        self.current = current


class UploadCompleted(Conflict):
    code = "upload_completed"


class UploadInterrupted(Conflict):
    code = "upload_interrupted"

    def __init__(self, current: int) -> None:
        super().__init__(
            f"A newer request for this upload stopped this one at offset {current}; resume from there.",
            param="offset",
        )
        self.current = current


class Locked(CairnError):
    code = "upload_locked"


class TooLarge(CairnError):
    code = "too_large"


class InsufficientStorage(CairnError):
    code = "insufficient_storage"


class Unauthenticated(CairnError):
    code = "invalid_api_key"


class Forbidden(CairnError):
    code = "forbidden"


class HostNotAllowed(Forbidden):
    code = "host_not_allowed"


class CrossSiteRequest(Forbidden):
    code = "cross_site_request"


class RequestTimeout(CairnError):
    code = "request_timeout"


class FailedDependency(CairnError):
    code = "failed_dependency"


class McpServerError(FailedDependency):
    """``error``: the failure as an ``mcp_call`` item shows it: ``{"type": "http_error", "code": <HTTP
    status>, "message"}`` (the server, or the way to it, failed), or ``{"type": "mcp_protocol_error",
    "code": <JSON-RPC code>, "message"}`` (the server answered with an error)."""

    code = "mcp_server_error"

    def __init__(self, message: str, *, kind: str, status: int) -> None:
        super().__init__(message)
        self.error = {"type": kind, "code": status, "message": message}


class RateLimited(CairnError):
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds until the budget has room for one more request


class Busy(RateLimited):
    code = "model_busy"


class Unavailable(CairnError):
    code = "unavailable"


class UpstreamFailed(Unavailable):
    code = "upstream_error"


class UpstreamTimeout(Unavailable):
    code = "upstream_timeout"
