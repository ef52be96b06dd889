"""The Files API's objects as the engine keeps them, which several faces create (``/v1/files``, OpenAI
Uploads, tus): the bucket ``files``, keyed by object id, the purposes a file is uploaded for, and how
long a file may be set to live."""

from __future__ import annotations

from .errors import InvalidInput

BUCKET = "files"
UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
EXPIRES_MIN_SECONDS = 3600
EXPIRES_MAX_SECONDS = 2_592_000


def purpose_of(fields: dict[str, str]) -> str:
    purpose = fields.get("purpose")
    if purpose is None:
        raise InvalidInput("Missing required parameter: 'purpose'.", param="purpose")
    if purpose not in UPLOAD_PURPOSES:
        raise InvalidInput(
            f"Invalid value for 'purpose': '{purpose}'. Expected one of: {', '.join(UPLOAD_PURPOSES)}.",
            param="purpose",
        )
    return purpose
