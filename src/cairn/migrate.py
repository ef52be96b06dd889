"""``cairn migrate``: copy an embedded install (SQLite and blobs in its data directory) into the
database and blob store that the settings name, typically PostgreSQL and S3.

Copied: every API key (hash, tenant, revoked or not) and every live object. An object's bytes go
through the target's ``BlobStore`` (stage, write, commit) and are checked against the row's sha256 as
they stream; its row is written only once its blob is committed, so a run stopped at any point leaves
no row without bytes. Ids already in the target are skipped: running it again resumes. Upload sessions
still pending are reported, not copied (their staged bytes exist only in the embedded install).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from .adapters.sql.schema import api_keys, objects, upload_sessions
from .compose import Composition, composed
from .core.errors import CairnError, NotFound
from .core.ports.blobs import BlobStore
from .core.records import ApiKeyRecord, ObjectRecord
from .settings import Settings

DATABASE_FILE = "cairn.db"
LOCK_FILE = "migrate.lock"
PAGE_ROWS = 500
PROGRESS_SECONDS = 2.0
STOPPING = (CairnError, sa.exc.SQLAlchemyError, OSError)  # what stops a run (a bug gets its traceback)


class MigrationRefused(Exception):
    """The source or the target is not fit for a migration; nothing was copied."""


class NotCopied(Exception):
    """One object cannot be copied (its bytes are unreadable or wrong, or its key is taken)."""


@dataclass
class Summary:
    objects: int = 0
    bytes: int = 0
    objects_present: int = 0
    keys: int = 0
    keys_present: int = 0
    revocations: int = 0
    not_copied: list[str] = field(default_factory=list)
    pending_uploads: int = 0


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    value = count / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _live(now: int) -> sa.ColumnElement[bool]:
    return sa.or_(objects.c.expires_at.is_(None), objects.c.expires_at > now)


class EmbeddedSource:
    """An embedded install, read only: its SQLite rows through SQLAlchemy, its blobs through the blob
    store the composer opens on its data directory (a blob may be one file or a directory of segments)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.database = self.data_dir / DATABASE_FILE
        if not self.database.is_file():
            raise MigrationRefused(f"{data_dir} is not an embedded Cairn install: it has no {DATABASE_FILE}.")
        self.url = f"sqlite:///{self.database}"
        self.engine = sa.create_engine(self.url)
        try:
            tables = set(sa.inspect(self.engine).get_table_names())
        except sa.exc.DatabaseError as exc:
            self.engine.dispose()
            raise MigrationRefused(f"{self.database} is not a SQLite database: {exc.orig}") from exc
        if not {objects.name, api_keys.name} <= tables:
            self.engine.dispose()
            raise MigrationRefused(f"{self.database} is not a Cairn database.")
        self.settings = Settings(data_dir=self.data_dir, database_url=None, blob_store=None)

    @contextlib.asynccontextmanager
    async def opened(self) -> AsyncIterator[BlobStore]:
        """Its blobs, once its schema is this version's (an older install is upgraded, as ``cairn
        serve`` would)."""
        async with composed(self.settings) as embedded:
            yield embedded.blobs

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One migration of this install at a time."""
        fd = os.open(self.data_dir / LOCK_FILE, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise MigrationRefused(f"Another 'cairn migrate' is running on {self.data_dir}.") from None
            yield
        finally:
            os.close(fd)

    def _all(self, query: sa.Executable) -> list[sa.Row[Any]]:
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def totals(self, now: int) -> tuple[int, int]:
        total_bytes = sa.func.coalesce(sa.func.sum(objects.c.bytes), 0)
        with self.engine.connect() as conn:
            count, size = conn.execute(sa.select(sa.func.count(), total_bytes).where(_live(now))).one()
        return int(count), int(size)

    def objects_after(self, after: str, now: int) -> list[ObjectRecord]:
        query = objects.select().where(objects.c.id > after, _live(now)).order_by(objects.c.id)
        return [ObjectRecord(**row._mapping) for row in self._all(query.limit(PAGE_ROWS))]

    def api_keys(self) -> list[ApiKeyRecord]:
        query = api_keys.select().order_by(api_keys.c.created_at, api_keys.c.id)
        return [ApiKeyRecord(**row._mapping) for row in self._all(query)]

    def pending_uploads(self, now: int) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(upload_sessions)
            .where(upload_sessions.c.object_id.is_(None), upload_sessions.c.expires_at > now)
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    @staticmethod
    async def verified_bytes(blobs: BlobStore, record: ObjectRecord) -> AsyncGenerator[bytes, None]:
        """The object's bytes; raises ``NotCopied`` once they prove missing or not the row's."""
        digest = hashlib.sha256()
        size = 0
        try:
            async for data in blobs.read(record.id, 0, record.bytes):
                digest.update(data)
                size += len(data)
                yield data
        except (NotFound, OSError) as exc:
            raise NotCopied(f"its bytes cannot be read: {exc}") from exc
        if size != record.bytes or digest.hexdigest() != record.sha256:
            raise NotCopied("its bytes do not match the sha256 recorded for it")

    def close(self) -> None:
        self.engine.dispose()


def _refuse_the_source_itself(settings: Settings, source: EmbeddedSource) -> str:
    """The target's description, unless it is the source itself."""
    storage = settings.storage
    url = make_url(storage.resolved_database_url)
    if url.get_backend_name() == "sqlite" and Path(url.database or "").resolve() == source.database:
        raise MigrationRefused(
            f"The target database is the source's own {source.database}. Point CAIRN_DATABASE_URL (and "
            "CAIRN_BLOB_STORE) at the new install, or CAIRN_DATA_DIR at another directory."
        )
    if not storage.blob_store and storage.data_dir.resolve() == source.data_dir:
        raise MigrationRefused(
            f"The target's blobs would go to the source directory {source.data_dir} itself. Set "
            "CAIRN_BLOB_STORE=s3://bucket/prefix, or CAIRN_DATA_DIR to another directory."
        )
    return f"{url.render_as_string()}, {storage.blob_store or storage.data_dir.resolve()}"


@contextlib.asynccontextmanager
async def opened_target(settings: Settings) -> AsyncIterator[Composition]:
    """The database and blob store the settings name, with its schema migrated."""
    stack = contextlib.AsyncExitStack()
    try:
        target = await stack.enter_async_context(composed(settings))
    except Exception as exc:
        await stack.aclose()
        url = make_url(settings.storage.resolved_database_url).render_as_string()
        raise MigrationRefused(f"The target database {url} could not be prepared: {_reason(exc)}") from exc
    async with stack:
        yield target


class Migration:
    def __init__(
        self, source: EmbeddedSource, source_blobs: BlobStore, target: Composition, *, jobs: int
    ) -> None:
        self.source = source
        self.source_blobs = source_blobs
        self.target = target
        self.jobs = jobs
        self.summary = Summary()
        self.now = int(time.time())
        self.total_objects = 0
        self._last_progress = time.monotonic()

    async def run(self) -> Summary:
        self.total_objects, total_bytes = self.source.totals(self.now)
        print(f"{self.total_objects} live objects ({_size(total_bytes)}) to check.", flush=True)
        self.summary.pending_uploads = self.source.pending_uploads(self.now)
        await self._copy_api_keys()
        await self._copy_objects()
        return self.summary

    async def _copy_api_keys(self) -> None:
        present = {record.id: record for record in await self.target.key_rows.list_api_keys()}
        for record in self.source.api_keys():
            there = present.get(record.id)
            if there is None:
                await self.target.key_rows.insert_api_key(record)
                self.summary.keys += 1
                continue
            self.summary.keys_present += 1
            if record.revoked_at is not None and there.revoked_at is None:
                await self.target.key_rows.revoke_api_key(record.id, record.revoked_at)
                self.summary.revocations += 1

    async def _missing_objects(self) -> AsyncIterator[ObjectRecord]:
        after = ""
        while page := await anyio.to_thread.run_sync(self.source.objects_after, after, self.now):
            after = page[-1].id
            present = await self.target.object_rows.existing_ids(record.id for record in page)
            self.summary.objects_present += len(present)
            for record in page:
                if record.id not in present:
                    yield record

    async def _copy_objects(self) -> None:
        slots = anyio.Semaphore(self.jobs)
        try:
            async with anyio.create_task_group() as copies:
                async for record in self._missing_objects():
                    await slots.acquire()
                    copies.start_soon(self._copy_in_slot, record, slots)
        except* STOPPING as failures:  # the first one stops the run, as it would one copy at a time
            raise failures.exceptions[0]  # noqa: B904 (re-raised as it is: its own cause tells why)

    async def _copy_in_slot(self, record: ObjectRecord, slots: anyio.Semaphore) -> None:
        try:
            await self._copy(record)
        except NotCopied as exc:
            self.summary.not_copied.append(record.id)
            where = f"{record.tenant}/{record.bucket}/{record.key}"
            print(f"warning: {record.id} ({where}) not copied: {exc}", file=sys.stderr, flush=True)
            return
        finally:
            slots.release()
        self.summary.objects += 1
        self.summary.bytes += record.bytes
        if time.monotonic() - self._last_progress >= PROGRESS_SECONDS:
            self._progress()

    async def _copy(self, record: ObjectRecord) -> None:
        blobs = self.target.blobs
        await blobs.delete(record.id)  # what a stopped run committed without writing its row
        writer = await blobs.stage()
        try:
            async with contextlib.aclosing(self.source.verified_bytes(self.source_blobs, record)) as chunks:
                async for data in chunks:
                    await writer.write(data)
            await writer.commit(record.id)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await writer.abort()
            raise
        # Had the insert failed otherwise, the row might exist all the same (a commit whose answer was
        # lost): the blob stays, and the target's sweep removes it if it has no row.
        try:
            await self.target.object_rows.insert_object(record)
        except sa.exc.IntegrityError as exc:
            if await self.target.object_rows.existing_ids([record.id]):
                return
            await blobs.delete(record.id)
            raise NotCopied("the target holds another object at its key") from exc

    def _progress(self) -> None:
        self._last_progress = time.monotonic()
        done = self.summary.objects + self.summary.objects_present + len(self.summary.not_copied)
        print(
            f"  objects {done}/{self.total_objects}, copied {self.summary.objects} "
            f"({_size(self.summary.bytes)})",
            flush=True,
        )


def report(summary: Summary) -> int:
    """Print the summary; the exit status: 0 when every live object is in the target."""
    print(
        f"Copied {summary.objects} objects ({_size(summary.bytes)}) and {summary.keys} API keys; "
        f"already in the target: {summary.objects_present} objects, {summary.keys_present} API keys."
    )
    if summary.revocations:
        print(f"Revoked in the target too: {summary.revocations} API keys revoked since an earlier run.")
    if summary.pending_uploads:
        print(
            f"warning: {summary.pending_uploads} pending upload session(s) not copied: finish or cancel "
            "them on the embedded server (or let them expire), then run this again.",
            file=sys.stderr,
        )
    if summary.not_copied:
        print(
            f"error: {len(summary.not_copied)} objects were not copied (see the warnings above).",
            file=sys.stderr,
        )
        return 1
    return 0


def _reason(exc: BaseException) -> str:
    """What went wrong, in the words of whatever failed (the driver, the store), without SQLAlchemy's
    statement and link."""
    cause = exc.__cause__ if isinstance(exc, CairnError) and exc.__cause__ else exc
    return str(getattr(cause, "orig", None) or cause)


async def migrate(settings: Settings, source_dir: Path, *, jobs: int) -> int:
    """Copy, print progress and a summary; the exit status. Raises ``MigrationRefused`` before copying."""
    source = EmbeddedSource(source_dir)
    try:
        with source.locked():
            description = _refuse_the_source_itself(settings, source)
            async with source.opened() as source_blobs, opened_target(settings) as target:
                print(f"From: {source.data_dir} (SQLite and local blobs)", flush=True)
                print(f"To:   {description}", flush=True)
                try:
                    summary = await Migration(source, source_blobs, target, jobs=jobs).run()
                except STOPPING as exc:
                    stopped = f"error: the migration stopped: {_reason(exc)}"
                    print(f"{stopped}\nRun the same command again to resume.", file=sys.stderr)
                    return 1
    finally:
        source.close()
    return report(summary)
