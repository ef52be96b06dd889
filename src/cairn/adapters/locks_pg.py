"""Upload-session locks that hold across replicas: PostgreSQL advisory locks (D17).

A session's lock is a session-level advisory lock held on a connection of this pool for as long as one
request appends. A request that finds it held takes the session's second advisory lock, the *release
request* (after any earlier newcomer let go of it), and then waits for the first; the holder polls
whether the release request is held (every ``RELEASE_POLL_SECONDS``, on its own connection) and lets go.
When a replica dies, PostgreSQL ends its connections and every lock they held goes with them, so a dead
holder never blocks a session for longer than its connection takes to close.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

import anyio
import asyncpg
from sqlalchemy.engine import make_url

from ..core.errors import Locked, Unavailable

log = logging.getLogger("cairn.locks")

CONNECTION_WAIT_SECONDS = 5.0  # for a connection of the pool, however short the lock wait
MAX_HELD_LOCKS = 64  # connections per process: appends in flight at once, beyond which requests wait
_DRIVER_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _lock_key(namespace: str, session_id: str) -> int:
    digest = hashlib.sha256(f"cairn:{namespace}:{session_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def asyncpg_dsn(database_url: str) -> str:
    """The ``postgresql://`` DSN asyncpg takes, from any SQLAlchemy PostgreSQL URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class PgSessionLock:
    def __init__(self, pool: asyncpg.Pool, connection: asyncpg.Connection, release_key: int) -> None:
        self._pool = pool
        self._connection: asyncpg.Connection | None = connection
        self._release_key = release_key

    async def release_requested(self) -> bool:
        """True when another request holds the release request, or when the hold cannot be checked
        (the connection, and with it the lock, may be gone)."""
        if self._connection is None:
            return True
        try:
            free = await self._connection.fetchval(
                "SELECT CASE WHEN pg_try_advisory_lock_shared($1) THEN pg_advisory_unlock_shared($1) END",
                self._release_key,
            )
        except _DRIVER_ERRORS:
            log.warning("lock.lost")
            return True
        return not free

    async def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._pool.release(connection)  # asyncpg's reset runs pg_advisory_unlock_all()


class PgSessionLocks:
    def __init__(self, database_url: str) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _connection(self, wait: float) -> asyncpg.Connection:
        try:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(self._dsn, min_size=0, max_size=MAX_HELD_LOCKS)
            return await self._pool.acquire(timeout=max(wait, CONNECTION_WAIT_SECONDS))
        except TimeoutError:
            raise Locked("Too many uploads are being written at once; retry shortly.") from None
        except _DRIVER_ERRORS as exc:
            log.error("locks.unreachable error=%s", exc)
            raise Unavailable("The metadata database is unavailable. Retry shortly.") from exc

    async def acquire(self, session_id: str, wait: float) -> PgSessionLock:
        """Take the session's lock; if it is held, ask the holder to let go and wait up to ``wait``
        seconds. Raises ``Locked`` if the holder did not let go in time."""
        key, release_key = _lock_key("session", session_id), _lock_key("release", session_id)
        connection = await self._connection(wait)
        assert self._pool is not None
        try:
            if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", key):
                await self._wait_for(connection, key, release_key, wait)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._pool.release(connection)
            if isinstance(exc, _DRIVER_ERRORS):
                log.error("locks.unreachable error=%s", exc)
                raise Unavailable("The metadata database is unavailable. Retry shortly.") from exc
            raise
        return PgSessionLock(self._pool, connection, release_key)

    @staticmethod
    async def _wait_for(connection: asyncpg.Connection, key: int, release_key: int, wait: float) -> None:
        """Hold the release request, then wait for the session. An earlier newcomer may hold the request
        already: it lets go of it as soon as it has the session, and this request then asks it in turn."""
        deadline = time.monotonic() + wait
        try:
            for lock in (release_key, key):
                remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
                await connection.execute(f"SET lock_timeout = {remaining_ms}")
                await connection.execute("SELECT pg_advisory_lock($1)", lock)
        except asyncpg.LockNotAvailableError:
            raise Locked("Another request is still writing to this upload; retry shortly.") from None
        await connection.execute("RESET lock_timeout")
        await connection.execute("SELECT pg_advisory_unlock($1)", release_key)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
