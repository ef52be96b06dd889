"""Upload session rows: what an unfinished upload will become and until when it lives. Used by
``core.uploads``; implemented by ``adapters.sql.sessions``."""

from __future__ import annotations

from typing import Protocol

from ..records import ObjectRecord, UploadSession


class UploadSessionRows(Protocol):
    async def insert_session(self, session: UploadSession) -> None: ...

    async def get_session(self, tenant: str, session_id: str, now: int) -> UploadSession | None:
        """The session unless it expired or was deleted."""

    async def delete_session(self, tenant: str, session_id: str) -> UploadSession | None: ...

    async def complete_session(self, session_id: str, record: ObjectRecord) -> ObjectRecord | None:
        """In one transaction: mark the session completed with ``record.id``, remove the object that held
        the same key (returned, so its bytes can go) and insert ``record``. Raises ``Conflict`` if the
        session is gone or already completed."""

    async def expired_sessions(self, now: int, limit: int) -> list[UploadSession]:
        """Up to ``limit`` expired sessions (any tenant), soonest expired first. Their rows stay until
        their staging is dropped, so a crash in between leaves nothing that no row names."""
