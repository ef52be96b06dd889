"""OpenAI's file object, as the Files and Uploads faces both answer with it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from ..core.records import ObjectRecord


class FileObject(BaseModel):
    object: Literal["file"] = "file"
    id: str
    bytes: int
    created_at: int
    expires_at: int | None
    filename: str
    purpose: str
    status: Literal["processed"] = "processed"
    status_details: None = None


def file_object(record: ObjectRecord) -> dict[str, Any]:
    return {
        "object": "file",
        "id": record.id,
        "bytes": record.bytes,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "filename": record.filename,
        "purpose": record.purpose,
        "status": "processed",
        "status_details": None,
    }
