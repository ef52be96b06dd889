"""The SQL database under the rows: SQLite (WAL) by default, PostgreSQL at scale, through SQLAlchemy Core.

Every operation is one synchronous function of a ``Connection``, run the cheapest way for the backend:
on SQLite the whole function runs in one worker thread on a pooled connection (a thread hop per
operation, not per driver call), and writers of one process queue on a lock instead of spinning in
SQLite's busy handler; on PostgreSQL it runs on the asyncpg event-loop driver through ``run_sync``.
Single-row lookups by primary or unique key on SQLite run inline on the event loop (tens of
microseconds, far less than a thread handoff) on a connection that gives up after a few milliseconds
if the database is busy, and then take the thread path (docs/decisions.md, D10).

The schema is owned by the Alembic migrations in ``migrations/``; ``migrate()`` applies them under a
lock (a file lock beside the SQLite database, an advisory lock on PostgreSQL) so several processes can
start at once. Connection and locking failures surface as ``Unavailable``.

SQLite is driven by ``sqlean`` (the standard ``sqlite3`` module built with a recent SQLite that can load
extensions; SQLAlchemy's ``pysqlite`` dialect runs on it unchanged) and every connection loads
``sqlite-vec``, whose distance functions the vector index uses (D30). The row stores of each
aggregate (``objects``, ``sessions``, ``keys``) run their work on one ``SqlDatabase``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
import sqlalchemy as sa
import sqlean
import sqlite_vec
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ...core.errors import Unavailable

T = TypeVar("T")
Work = Callable[[sa.Connection], T]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
POSTGRES_MIGRATION_LOCK = 0x6361_6972_6E  # "cairn"


def async_database_url(url: str) -> str:
    """Pick the async driver for a plain ``postgresql://`` URL (SQLite uses ``sqlean``)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


# SQLSTATE classes of a server that cannot serve now: a connection failed or was closed (08), no
# connection or memory left (53), shutting down, starting up or terminated by an operator (57P)
UNAVAILABLE_SQLSTATES = ("08", "53", "57P")


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.InterfaceError, OSError) as exc:
        raise Unavailable("The metadata database is unavailable. Retry shortly.") from exc
    except sa.exc.TimeoutError as exc:  # every pooled connection stayed busy
        raise Unavailable("The metadata database is busy. Retry shortly.") from exc
    except sa.exc.DBAPIError as exc:
        if exc.connection_invalidated:
            raise Unavailable("The metadata database connection was lost. Retry shortly.") from exc
        if str(getattr(exc.orig, "sqlstate", None) or "").startswith(UNAVAILABLE_SQLSTATES):
            raise Unavailable("The metadata database is unavailable. Retry shortly.") from exc
        raise


SQLITE_THREADS = 8
INLINE_BUSY_TIMEOUT_MS = 5


class _SqliteRunner:
    """Runs each operation in one worker thread; one writer per process at a time.

    As many threads as pooled connections: more would only contend for the GIL, and connections
    beyond the pool would be opened (with their PRAGMAs) and closed on every use."""

    def __init__(self, url: URL) -> None:
        self.path = Path(url.database or "")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(
            url.set(drivername="sqlite"), module=sqlean, pool_size=SQLITE_THREADS, max_overflow=0
        )
        event.listen(self.engine, "connect", _sqlite_pragmas)
        self._write_lock = threading.Lock()
        self._threads = anyio.CapacityLimiter(SQLITE_THREADS)
        # Used only from the event loop, one call at a time: one connection is enough.
        self._inline = sa.create_engine(
            url.set(drivername="sqlite"), module=sqlean, poolclass=sa.pool.StaticPool
        )
        event.listen(self._inline, "connect", _sqlite_pragmas)
        event.listen(self._inline, "connect", _short_busy_timeout)

    async def read(self, work: Work[T]) -> T:
        return await anyio.to_thread.run_sync(self._read, work, limiter=self._threads)

    async def read_point(self, work: Work[T]) -> T:
        try:
            with self._inline.connect() as conn:
                return work(conn)
        except sa.exc.OperationalError:  # busy (a checkpoint, a recovery): wait for it off the loop
            return await self.read(work)

    async def write(self, work: Work[T]) -> T:
        return await anyio.to_thread.run_sync(self._write, work, limiter=self._threads)

    def _read(self, work: Work[T]) -> T:
        with _translated(), self.engine.connect() as conn:
            return work(conn)

    def _write(self, work: Work[T]) -> T:
        with _translated(), self._write_lock, self.engine.begin() as conn:
            return work(conn)

    async def migrate(self) -> None:
        lock_fd = os.open(f"{self.path}.migrate-lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            await anyio.to_thread.run_sync(fcntl.flock, lock_fd, fcntl.LOCK_EX)
            await self.write(_run_alembic_upgrade)
        finally:
            os.close(lock_fd)

    async def close(self) -> None:
        self._inline.dispose()
        await anyio.to_thread.run_sync(self.engine.dispose)


POSTGRES_CONNECT_TIMEOUT_SECONDS = 10
POSTGRES_POOL_SIZE = 20  # connections kept per process; more requests at once wait for one


class _AsyncRunner:
    """Runs each operation on an async driver (asyncpg) without threads.

    Pooled connections are not tested before use (that was a fifth of a lookup's cost): when one turns
    out dead (a restart of the server or of the network between them), the pool drops every connection
    as old as it, and a read runs again on a new one; a write answers 503 and its client retries. A
    server that does not answer at all fails each request after the connect timeout, not asyncpg's
    minute."""

    def __init__(self, url: URL) -> None:
        self.engine = create_async_engine(
            url,
            pool_size=POSTGRES_POOL_SIZE,
            max_overflow=0,  # overflow connections close on return: under load, a new backend per query
            connect_args={"timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS},
        )
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def read(self, work: Work[T]) -> T:
        return await self._read(self.engine, work)

    async def write(self, work: Work[T]) -> T:
        with _translated():
            async with self.engine.begin() as conn:
                return await conn.run_sync(work)

    async def read_point(self, work: Work[T]) -> T:
        """One single-row lookup in autocommit: no BEGIN and ROLLBACK around it, a third of the round
        trips of the hottest queries (API keys and objects by id)."""
        return await self._read(self._autocommit, work)

    @staticmethod
    async def _read(engine: AsyncEngine, work: Work[T]) -> T:
        """A read that meets a dead connection (the server restarted) runs again, once: the pool has
        dropped every connection as old as that one by then."""
        with _translated():
            for attempt in (1, 2):
                try:
                    async with engine.connect() as conn:
                        return await conn.run_sync(work)
                except sa.exc.DBAPIError as exc:
                    if attempt == 2 or not exc.connection_invalidated:
                        raise
        raise AssertionError("unreachable")

    async def migrate(self) -> None:
        with _translated():
            async with self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": POSTGRES_MIGRATION_LOCK})
                try:
                    await conn.run_sync(_run_alembic_upgrade)
                    await conn.commit()
                finally:
                    await conn.rollback()  # a failed migration leaves its transaction aborted
                    await conn.execute(
                        sa.text("SELECT pg_advisory_unlock(:k)"), {"k": POSTGRES_MIGRATION_LOCK}
                    )
                    await conn.commit()

    async def close(self) -> None:
        await self.engine.dispose()


class Runner(Protocol):
    async def read(self, work: Work[T]) -> T: ...

    async def read_point(self, work: Work[T]) -> T:
        """A single-row lookup by a unique key, the cheapest way the backend allows."""

    async def write(self, work: Work[T]) -> T:
        """``work`` in one transaction."""

    async def migrate(self) -> None: ...

    async def close(self) -> None: ...


class SqlDatabase:
    """The database of one URL: its runner, its schema and its lifetime."""

    def __init__(self, url: str) -> None:
        parsed = make_url(async_database_url(url))
        self.dialect = parsed.get_backend_name()
        self.runner: Runner = _SqliteRunner(parsed) if self.dialect == "sqlite" else _AsyncRunner(parsed)

    async def migrate(self) -> None:
        await self.runner.migrate()

    async def close(self) -> None:
        await self.runner.close()

    async def ping(self) -> None:
        await self.runner.read(lambda conn: conn.execute(sa.text("SELECT 1")).all())


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.enable_load_extension(True)
    dbapi_connection.load_extension(sqlite_vec.loadable_path())
    dbapi_connection.enable_load_extension(False)  # SQL can never load one: load_extension() is off
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged object must survive a power loss
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute(f"PRAGMA busy_timeout={INLINE_BUSY_TIMEOUT_MS}")


def _run_alembic_upgrade(connection: sa.Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
