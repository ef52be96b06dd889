"""Blobs on a local disk.

Layout under the data directory::

    staging/<random>.part        bytes being received; the writer holds an exclusive flock on it
    staging/<random>.join/       a segmented blob being built (see below), flocked the same way
    sessions/<upload id>         an upload session's staged bytes; its size is the session's offset;
                                 the request appending to it holds an exclusive flock on it
    sessions/<upload id>.release present while another request asks the holder to let go
    sessions/<upload id>.parts/<part id>   parts of an upload that arrives in parts (OpenAI Uploads)
    blobs/<id[-2:]>/<id[-4:-2]>/<id>   committed blobs, named by object id only: a file, or a directory
                                 of segments 00000, 00001, … (the parts of an upload, hard-linked, joined
                                 in name order) so that completing an upload in parts copies no byte

Commit is fsync(file) → rename(staging → blobs/…) → fsync(directory): a blob is either wholly there or
absent. Crash behaviour: a staging entry whose flock nobody holds is abandoned (its writer died, and the
kernel dropped the lock with it) and the sweep deletes it at once, however young; a blob without a
metadata row (crash between rename and the row insert, or between row delete and unlink) is deleted by
the sweep once it is older than ``STRAY_GRACE_SECONDS``, which keeps the sweep of one process away from
another process's commit in flight. Several processes may share one directory.
A completed session's bytes become a blob by a hard link (then the row, then the session file goes),
so a crash at any step leaves either the session resumable or the object complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import logging
import os
import secrets
import shutil
import stat
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path

import anyio

from ..core.errors import InsufficientStorage, Locked, NotFound, Unavailable
from ..core.ports.blobs import LiveCheck

log = logging.getLogger("cairn.blobs")

READ_CHUNK_BYTES = 1 << 20
SYNC_AHEAD_BYTES = 4 << 20
STRAY_GRACE_SECONDS = 15 * 60
LOCK_POLL_SECONDS = 0.05
SWEEP_BATCH = 500


def _write_all(fd: int, data: bytearray | bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _claim_staging(staging_dir: Path, suffix: str, create: Callable[[Path], int | None]) -> tuple[Path, int]:
    """A new staging entry (``create`` makes it and returns a descriptor), held under an exclusive flock
    until the descriptor closes. The sweep deletes only entries whose flock it can take, and deletes
    them while it holds it: if it came between creation and flock, the entry is gone by the time the
    flock is ours, and another is made."""
    while True:
        path = staging_dir / f"{secrets.token_hex(16)}{suffix}"
        fd = create(path)
        if fd is None:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _still_named(fd, path):
                return path, fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _still_named(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _create_file(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)


def _create_directory(path: Path) -> int | None:
    os.mkdir(path, 0o700)
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:  # swept before it could be opened
        return None


def _raise_storage_error(exc: OSError) -> None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise InsufficientStorage("The storage volume is full.") from exc
    raise exc


async def _read_file(path: Path) -> AsyncIterator[bytes]:
    fd = await anyio.to_thread.run_sync(os.open, path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        position = 0
        while data := await anyio.to_thread.run_sync(os.pread, fd, READ_CHUNK_BYTES, position):
            position += len(data)
            yield data
    finally:
        os.close(fd)


def _open_blob(path: Path) -> tuple[int, bool]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    return fd, stat.S_ISDIR(os.fstat(fd).st_mode)


def _segments(path: Path) -> list[tuple[int, int]]:
    """Open file descriptors and sizes of a segmented blob's segments, in order."""
    opened: list[tuple[int, int]] = []
    try:
        for name in sorted(os.listdir(path)):
            fd = os.open(path / name, os.O_RDONLY | os.O_CLOEXEC)
            opened.append((fd, os.fstat(fd).st_size))
    except BaseException:
        for fd, _ in opened:
            os.close(fd)
        raise
    return opened


async def _read_range(fd: int, start: int, end: int) -> AsyncIterator[bytes]:
    position = start
    while position < end:
        data = await anyio.to_thread.run_sync(os.pread, fd, min(READ_CHUNK_BYTES, end - position), position)
        if not data:
            raise OSError(errno.EIO, "a blob is shorter than its recorded size")
        position += len(data)
        yield data


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        shutil.rmtree(path, ignore_errors=True)


class LocalBlobWriter:
    """Opens its staging file with the first write (or at commit), saving a thread hop per object.
    ``target`` names the committed file: a blob, or a part of an upload session."""

    def __init__(self, store: LocalBlobStore, target: Callable[[str], Path]) -> None:
        self._store = store
        self._target = target
        self._staged: tuple[Path, int] | None = None  # the staging file and its descriptor, once opened
        self._done = False

    def _open(self) -> tuple[Path, int]:
        if self._staged is None:
            self._staged = _claim_staging(self._store.staging_dir, ".part", _create_file)
        return self._staged

    def _write_sync(self, data: bytes | bytearray) -> None:
        _write_all(self._open()[1], data)

    async def write(self, data: bytes | bytearray) -> None:
        assert not self._done, "write after commit or abort"
        try:
            await anyio.to_thread.run_sync(self._write_sync, data)
        except OSError as exc:
            _raise_storage_error(exc)

    async def commit(self, blob_id: str) -> None:
        assert not self._done, "commit after commit or abort"
        self._done = True
        try:
            await anyio.to_thread.run_sync(self._commit_sync, blob_id)
        except OSError as exc:
            _raise_storage_error(exc)

    def _commit_sync(self, blob_id: str) -> None:
        path, fd = self._open()
        self._staged = None
        self._store._commit_staged(fd, path, self._target(blob_id))

    async def abort(self) -> None:
        self._done = True
        staged, self._staged = self._staged, None
        if staged is not None:
            await anyio.to_thread.run_sync(self._store._discard_staged, staged[1], staged[0])


class LocalSessionAppender:
    """While an append streams in, written bytes are flushed to disk in the background
    (``SYNC_AHEAD_BYTES`` at a time), so the fsync that ends the append has little left to do."""

    def __init__(self, store: LocalBlobStore, path: Path, fd: int) -> None:
        self._store = store
        self._path = path
        self._fd = fd
        self.offset = os.fstat(fd).st_size
        self._unsynced = 0
        self._flushing: asyncio.Future[None] | None = None

    async def write(self, data: bytes | bytearray) -> None:
        try:
            await anyio.to_thread.run_sync(_write_all, self._fd, data)
        except OSError as exc:
            self.offset = await anyio.to_thread.run_sync(lambda: os.fstat(self._fd).st_size)
            _raise_storage_error(exc)
        self.offset += len(data)
        self._unsynced += len(data)
        if self._unsynced >= SYNC_AHEAD_BYTES and (self._flushing is None or self._flushing.done()):
            self._unsynced = 0
            self._flushing = asyncio.get_running_loop().run_in_executor(None, os.fdatasync, self._fd)

    async def _flushed(self) -> None:
        if self._flushing is not None:
            flushing, self._flushing = self._flushing, None
            with anyio.CancelScope(shield=True):
                await flushing

    @property
    def settled_offset(self) -> int:
        return self.offset  # written bytes are in the file, which every request reads

    async def truncate(self, offset: int) -> None:
        await self._flushed()
        await anyio.to_thread.run_sync(os.ftruncate, self._fd, offset)
        self.offset = offset

    async def sync(self) -> None:
        await self._flushed()
        await anyio.to_thread.run_sync(os.fsync, self._fd)
        self._unsynced = 0

    async def publish(self, blob_id: str) -> None:
        await anyio.to_thread.run_sync(self._publish, blob_id)

    def _publish(self, blob_id: str) -> None:
        try:
            os.fsync(self._fd)
            target = self._store.blob_path(blob_id)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(self._path, target)
            _fsync_dir(target.parent)
        except OSError as exc:
            _raise_storage_error(exc)

    def read_staged(self) -> AsyncIterator[bytes]:
        return _read_file(self._path)

    async def release_requested(self) -> bool:
        return self._path.with_suffix(".release").exists()

    async def release(self) -> None:
        await self._flushed()  # its thread still uses the descriptor
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)  # drops the flock


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging_dir = root / "staging"
        self.sessions_dir = root / "sessions"
        self.blobs_dir = root / "blobs"
        for directory in (self.staging_dir, self.sessions_dir, self.blobs_dir):
            directory.mkdir(parents=True, exist_ok=True)

    def _session_path(self, session_id: str) -> Path:
        return self.sessions_dir / session_id

    async def acquire(self, session_id: str, wait: float) -> LocalSessionAppender:
        path = self._session_path(session_id)
        fd = await anyio.to_thread.run_sync(
            os.open, path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        release_request = path.with_suffix(".release")
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise Locked(
                            "Another request is still writing to this upload; retry shortly."
                        ) from None
                    release_request.touch()
                    await anyio.sleep(LOCK_POLL_SECONDS)
        except BaseException:
            os.close(fd)
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                release_request.unlink()
        return LocalSessionAppender(self, path, fd)

    async def staged_size(self, session_id: str) -> int:
        try:
            stat = await anyio.to_thread.run_sync(self._session_path(session_id).stat)
        except FileNotFoundError:
            return 0
        return stat.st_size

    def _parts_dir(self, session_id: str) -> Path:
        return self._session_path(session_id).with_suffix(".parts")

    async def stage_part(self, session_id: str, part_id: str) -> LocalBlobWriter:
        return LocalBlobWriter(self, lambda name: self._parts_dir(session_id) / name)

    async def drop_part(self, session_id: str, part_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await anyio.to_thread.run_sync((self._parts_dir(session_id) / part_id).unlink)

    async def part_sizes(self, session_id: str) -> dict[str, int]:
        def scan() -> dict[str, int]:
            try:
                return {e.name: e.stat().st_size for e in os.scandir(self._parts_dir(session_id))}
            except FileNotFoundError:
                return {}

        return await anyio.to_thread.run_sync(scan)

    async def read_parts(self, session_id: str, part_ids: list[str]) -> AsyncIterator[bytes]:
        for part_id in part_ids:
            async for data in _read_file(self._parts_dir(session_id) / part_id):
                yield data

    async def unpublish(self, session_id: str, blob_id: str) -> None:
        await self.delete(blob_id)  # a link to the staged bytes, or the joined parts' segments

    async def retire(self, session_id: str) -> None:
        await self.discard(session_id)  # the object's blob is a link of its own

    async def discard(self, session_id: str) -> None:
        path = self._session_path(session_id)
        for stale in (path, path.with_suffix(".release")):
            with contextlib.suppress(FileNotFoundError):
                await anyio.to_thread.run_sync(stale.unlink)
        await anyio.to_thread.run_sync(
            functools.partial(shutil.rmtree, self._parts_dir(session_id), ignore_errors=True)
        )

    def blob_path(self, blob_id: str) -> Path:
        return self.blobs_dir / blob_id[-2:] / blob_id[-4:-2] / blob_id

    async def stage(self) -> LocalBlobWriter:
        return LocalBlobWriter(self, self.blob_path)

    def _commit_staged(self, fd: int, path: Path, target: Path) -> None:
        try:
            os.fsync(fd)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(path, target)
            _fsync_dir(target.parent)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            _raise_storage_error(exc)
        finally:
            os.close(fd)

    @staticmethod
    def _discard_staged(fd: int, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)

    async def read(self, blob_id: str, start: int, end: int) -> AsyncGenerator[bytes, None]:
        path = self.blob_path(blob_id)
        try:
            fd, is_segmented = await anyio.to_thread.run_sync(_open_blob, path)
        except FileNotFoundError as exc:
            log.error("blob.missing id=%s", blob_id)
            raise NotFound(f"No such file: '{blob_id}'.", param="file_id") from exc
        if is_segmented:
            os.close(fd)
            segments = await anyio.to_thread.run_sync(_segments, path)
        else:
            segments = [(fd, end)]  # one file: it holds at least the recorded size
        try:
            base = 0
            for segment_fd, size in segments:
                if base + size > start and base < end:
                    async for data in _read_range(segment_fd, max(start - base, 0), min(end - base, size)):
                        yield data
                base += size
            if base < end:
                raise OSError(errno.EIO, f"blob {blob_id} is shorter than its recorded size")
        finally:
            for segment_fd, _ in segments:
                os.close(segment_fd)

    async def delete(self, blob_id: str) -> None:
        await anyio.to_thread.run_sync(_remove, self.blob_path(blob_id))

    async def publish_parts(self, session_id: str, part_ids: list[str], blob_id: str) -> None:
        try:
            await anyio.to_thread.run_sync(self._publish_parts, session_id, part_ids, blob_id)
        except OSError as exc:
            _raise_storage_error(exc)

    def _publish_parts(self, session_id: str, part_ids: list[str], blob_id: str) -> None:
        """Hard-link the (already durable) parts into a segmented blob built in staging, then rename it
        into place: the parts stay with the session until the object row exists."""
        building, lock_fd = _claim_staging(self.staging_dir, ".join", _create_directory)
        try:
            for index, part_id in enumerate(part_ids):
                os.link(self._parts_dir(session_id) / part_id, building / f"{index:05d}")
            _fsync_dir(building)
            target = self.blob_path(blob_id)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(building, target)
            _fsync_dir(target.parent)
        except OSError:
            shutil.rmtree(building, ignore_errors=True)
            raise
        finally:
            os.close(lock_fd)

    async def free_bytes(self) -> int:
        usage = await anyio.to_thread.run_sync(shutil.disk_usage, self.root)
        return usage.free

    async def ping(self) -> None:
        try:
            await self.free_bytes()
        except OSError as exc:
            raise Unavailable(f"The blob volume is unavailable: {exc.strerror}.") from exc

    async def sweep(self, is_live: LiveCheck) -> int:
        removed = await anyio.to_thread.run_sync(self._sweep_staging)
        lock_fd = os.open(self.root / "sweep.lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return removed  # another process is sweeping
            candidates = await anyio.to_thread.run_sync(self._old_blob_ids)
            for i in range(0, len(candidates), SWEEP_BATCH):
                batch = candidates[i : i + SWEEP_BATCH]
                live = await is_live(batch)
                for blob_id in batch:
                    if blob_id not in live:
                        await self.delete(blob_id)
                        removed += 1
        finally:
            os.close(lock_fd)
        return removed

    def _sweep_staging(self) -> int:
        """Remove the staging entries no live process holds (``_claim_staging``): a writer's flock goes
        with its process, however that ends."""
        removed = 0
        for entry in os.scandir(self.staging_dir):
            try:
                fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            else:
                if entry.is_dir(follow_symlinks=False):  # a segmented blob that a crash left half built
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                removed += 1
            finally:
                os.close(fd)
        return removed

    def _old_blob_ids(self) -> list[str]:
        cutoff = time.time() - STRAY_GRACE_SECONDS
        found = []
        for shard in os.scandir(self.blobs_dir):
            for sub in os.scandir(shard.path):
                for entry in os.scandir(sub.path):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        found.append(entry.name)
        return found
