"""Who may append to an upload session, across every process that shares its staging. Used by
``adapters.sessions_s3`` (local staging locks files itself); implemented by ``adapters.locks_pg``."""

from __future__ import annotations

from typing import Protocol


class SessionLock(Protocol):
    """One request's hold on one session."""

    async def release_requested(self) -> bool:
        """Whether another request asked for the session (or the hold was lost); let go soon if so."""

    async def release(self) -> None: ...


class SessionLocks(Protocol):
    async def acquire(self, session_id: str, wait: float) -> SessionLock:
        """Take the session's lock. If another request holds it, ask it to let go and wait up to
        ``wait`` seconds; raises ``Locked`` if it did not."""
