"""The upload session engine, on every backend set, with real adapters."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from botocore.exceptions import EndpointConnectionError

from cairn.adapters.blobs_local import LocalBlobStore
from cairn.adapters.sessions_s3 import S3SessionStaging
from cairn.core import uploads as uploads_module
from cairn.core.errors import (
    ChecksumMismatch,
    InvalidInput,
    Locked,
    NotFound,
    OffsetMismatch,
    TooLarge,
    Unavailable,
    UploadCompleted,
    UploadInterrupted,
)
from cairn.core.objects import ObjectEngine
from cairn.core.ports.sessions import UploadSessionRows
from cairn.core.ports.staging import SessionStaging
from cairn.core.uploads import ChunkDigest, UploadEngine

pytestmark = pytest.mark.anyio


async def body(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


SESSION_FIELDS = {"tenant": "t", "bucket": "b", "key": "k", "mime_type": "a/b", "size": 5}


def make_uploads(
    engine: ObjectEngine, staging: SessionStaging, session_rows: UploadSessionRows, clock
) -> UploadEngine:
    return UploadEngine(engine, staging, session_rows, expires_after=3600, clock=clock)


async def blob_exists(engine: ObjectEngine, blob_id: str) -> bool:
    try:
        async for _ in engine.blobs.read(blob_id, 0, 1):
            pass
    except NotFound:
        return False
    return True


async def read_all(engine: ObjectEngine, record) -> bytes:
    return b"".join([chunk async for chunk in engine.read(record)])


async def test_appends_complete_the_object_with_its_sha256(
    engine: ObjectEngine, clock, staging: SessionStaging, session_rows: UploadSessionRows
) -> None:
    uploads = make_uploads(engine, staging, session_rows, clock)
    data = os.urandom(3_000_000)
    created = await uploads.create(
        tenant="t", bucket="b", key="k/x.bin", mime_type="application/x", size=len(data)
    )
    first = await uploads.append("t", "b", created.session.id, body(data[:1_000_000]), expected_offset=0)
    assert (first.offset, first.completed) == (1_000_000, None)
    with pytest.raises(OffsetMismatch) as mismatch:
        await uploads.append("t", "b", created.session.id, body(b"dup"), expected_offset=0)
    assert mismatch.value.current == 1_000_000
    done = await uploads.append("t", "b", created.session.id, body(data[1_000_000:]))
    assert done.completed is not None and done.completed.sha256 == hashlib.sha256(data).hexdigest()
    assert await read_all(engine, done.completed) == data
    with pytest.raises(UploadCompleted):
        await uploads.append("t", "b", created.session.id, body(b"more"))


async def test_a_new_engine_after_a_restart_rehashes_what_is_staged(
    engine: ObjectEngine, clock, staging: SessionStaging, session_rows: UploadSessionRows
) -> None:
    data = os.urandom(2_500_000)
    before = make_uploads(engine, staging, session_rows, clock)
    created = await before.create(tenant="t", bucket="b", key="k", mime_type="a/b", size=len(data))
    await before.append("t", "b", created.session.id, body(data[:1_234_567]))
    after = make_uploads(engine, staging, session_rows, clock)  # the in-memory hash state is gone
    session, offset = await after.get("t", "b", created.session.id)
    assert offset == 1_234_567
    done = await after.append("t", "b", session.id, body(data[offset:]), expected_offset=offset)
    assert done.completed is not None and done.completed.sha256 == hashlib.sha256(data).hexdigest()


async def test_over_size_append_changes_nothing(
    engine: ObjectEngine, clock, staging: SessionStaging, session_rows: UploadSessionRows
) -> None:
    uploads = make_uploads(engine, staging, session_rows, clock)
    created = await uploads.create(tenant="t", bucket="b", key="k", mime_type="a/b", size=10)
    await uploads.append("t", "b", created.session.id, body(b"12345"))
    with pytest.raises(TooLarge):
        await uploads.append("t", "b", created.session.id, body(b"123", b"456"))
    with pytest.raises(TooLarge):
        await uploads.append("t", "b", created.session.id, body(b"123456"), length=6)
    assert (await uploads.get("t", "b", created.session.id))[1] == 5


async def test_checksum_mismatch_keeps_the_staged_bytes(
    engine: ObjectEngine, clock, staging: SessionStaging, session_rows: UploadSessionRows
) -> None:
    uploads = make_uploads(engine, staging, session_rows, clock)
    created = await uploads.create(
        tenant="t", bucket="b", key="k", mime_type="a/b", size=4, sha256=hashlib.sha256(b"good").hexdigest()
    )
    with pytest.raises(ChecksumMismatch):
        await uploads.append("t", "b", created.session.id, body(b"evil"))
    assert (await uploads.get("t", "b", created.session.id))[1] == 4
    with pytest.raises(NotFound):
        await engine.get_by_key("t", "b", "k")


async def test_a_stalled_holder_is_asked_to_let_go(
    engine: ObjectEngine, clock, staging: SessionStaging, session_rows: UploadSessionRows
) -> None:
    uploads = make_uploads(engine, staging, session_rows, clock)
    created = await uploads.create(tenant="t", bucket="b", key="k", mime_type="a/b", size=20)
    stalled = anyio.Event()

    async def dead_connection() -> AsyncIterator[bytes]:
        yield b"0123456789"
        stalled.set()
        await anyio.sleep(3600)  # never sends the rest
        yield b""

    interrupted: list[UploadInterrupted] = []
    async with anyio.create_task_group() as tasks:

        async def first() -> None:
            with pytest.raises(UploadInterrupted) as raised:
                await uploads.append("t", "b", created.session.id, dead_connection())
            interrupted.append(raised.value)

        tasks.start_soon(first)
        await stalled.wait()
        # The reconnecting client asks where to resume, then resumes there: the stalled request's
        # bytes that never reached the disk (and were never acknowledged) do not move that offset.
        _, seen = await uploads.get("t", "b", created.session.id)
        data = b"0123456789abcdefghij"
        second = await uploads.append("t", "b", created.session.id, body(data[seen:]), expected_offset=seen)
    assert interrupted[0].current == seen
    assert second.completed is not None
    assert await read_all(engine, second.completed) == data


async def test_a_holder_that_does_not_let_go_makes_the_newcomer_locked(
    engine: ObjectEngine,
    clock,
    staging: SessionStaging,
    session_rows: UploadSessionRows,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uploads = make_uploads(engine, staging, session_rows, clock)
    created = await uploads.create(tenant="t", bucket="b", key="k", mime_type="a/b", size=5)
    holder = await staging.acquire(created.session.id, wait=0)
    monkeypatch.setattr(uploads_module, "LOCK_WAIT_SECONDS", 0.2)
    try:
        with pytest.raises(Locked):
            await uploads.append("t", "b", created.session.id, body(b"x"))
    finally:
        await holder.release()


async def test_the_newest_of_several_waiting_requests_gets_the_session(
    engine: ObjectEngine, clock, staging: SessionStaging, session_rows: UploadSessionRows
) -> None:
    """A client that reconnects twice while its first request still holds the session: the third request
    gets the session in time, whether the second one had it in between or not."""
    session = (await make_uploads(engine, staging, session_rows, clock).create(**SESSION_FIELDS)).session
    order: list[str] = []
    done = anyio.Event()

    async def append_until_asked(name: str, finishing_seconds: float) -> None:
        appender = await staging.acquire(session.id, wait=5)
        order.append(name)
        try:
            while not (done.is_set() or await appender.release_requested()):
                await anyio.sleep(0.01)
            await anyio.sleep(finishing_seconds)  # a write under way when the request came
        finally:
            with anyio.CancelScope(shield=True):
                await appender.release()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(append_until_asked, "first", 1.0)
        while order != ["first"]:
            await anyio.sleep(0.01)
        tasks.start_soon(append_until_asked, "second", 0)
        await anyio.sleep(0.3)  # the second request has asked the first to let go, and waits
        with anyio.fail_after(4):  # well inside the 5 s wait: nobody times out
            third = await staging.acquire(session.id, wait=5)
        order.append("third")
        await third.release()
        done.set()
    assert order[:1] == ["first"] and order.count("third") == 1 and order.count("second") == 1


async def test_sessions_are_scoped_and_expire(
    engine: ObjectEngine, clock, staging: SessionStaging, session_rows: UploadSessionRows
) -> None:
    uploads = make_uploads(engine, staging, session_rows, clock)
    created = await uploads.create(tenant="t", bucket="b", key="k", mime_type="a/b", size=5)
    await uploads.append("t", "b", created.session.id, body(b"ab"))
    for tenant, bucket in (("other", "b"), ("t", "other")):
        with pytest.raises(NotFound):
            await uploads.get(tenant, bucket, created.session.id)
    clock.now += 3600
    with pytest.raises(NotFound):
        await uploads.get("t", "b", created.session.id)
    assert await uploads.expire_due() == 1
    assert await staging.staged_size(created.session.id) == 0


async def test_a_staging_that_cannot_be_dropped_keeps_its_row_until_it_is(
    engine: ObjectEngine, clock, staging: SessionStaging, session_rows: UploadSessionRows
) -> None:
    if not isinstance(staging, S3SessionStaging):
        pytest.skip("the store's failure is injected through its S3 client")
    uploads = make_uploads(engine, staging, session_rows, clock)
    sessions = [
        (await uploads.create(tenant="t", bucket="b", key=f"k{n}", mime_type="a/b", size=5)).session
        for n in range(2)
    ]
    for session in sessions:
        await uploads.append("t", "b", session.id, body(b"abc"))

    def store_down(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="the object store")

    client = await staging.blobs.client()
    client.meta.events.register("before-call.s3.DeleteObject", store_down)
    with pytest.raises(Unavailable):
        await uploads.cancel("t", "b", sessions[0].id)
    clock.now += 3600
    with pytest.raises(Unavailable):
        await uploads.expire_due()
    assert [await staging.staged_size(s.id) for s in sessions] == [3, 3]  # the tails could not go
    client.meta.events.unregister("before-call.s3.DeleteObject", store_down)

    assert await uploads.expire_due() == 2  # the rows were kept, so the next pass finds both
    assert [await staging.staged_size(s.id) for s in sessions] == [0, 0]
    assert await uploads.expire_due() == 0


async def test_completing_onto_an_existing_key_replaces_it(
    engine: ObjectEngine, clock, staging: SessionStaging, session_rows: UploadSessionRows
) -> None:
    uploads = make_uploads(engine, staging, session_rows, clock)
    old = (await uploads.create(tenant="t", bucket="b", key="same", mime_type="a/b", size=0)).completed
    new = (await uploads.create(tenant="t", bucket="b", key="same", mime_type="a/b", size=0)).completed
    assert old is not None and new is not None and old.id != new.id
    assert (await engine.get_by_key("t", "b", "same")).id == new.id
    with pytest.raises(NotFound):
        await engine.get("t", None, old.id)
    assert not await blob_exists(engine, old.id)


async def test_a_holder_asked_to_let_go_mid_write_reports_exactly_what_it_staged(
    engine: ObjectEngine,
    clock,
    staging: SessionStaging,
    session_rows: UploadSessionRows,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(uploads_module, "STAGE_BATCH_BYTES", 1)  # every chunk is a write to cancel into
    monkeypatch.setattr(uploads_module, "RELEASE_POLL_SECONDS", 0.001)
    uploads = make_uploads(engine, staging, session_rows, clock)
    size = 4_000_000
    created = await uploads.create(tenant="t", bucket="b", key="k", mime_type="a/b", size=size)

    async def steady() -> AsyncIterator[bytes]:
        for _ in range(size // 1000):
            yield b"A" * 1000
            await anyio.sleep(0)

    interrupted: list[UploadInterrupted] = []
    async with anyio.create_task_group() as tasks:

        async def first() -> None:
            with pytest.raises(UploadInterrupted) as raised:
                await uploads.append("t", "b", created.session.id, steady())
            interrupted.append(raised.value)

        tasks.start_soon(first)
        await anyio.sleep(0.05)
        session, _ = await uploads.get("t", "b", created.session.id)
        holder = await staging.acquire(session.id, wait=10)
        staged = holder.offset
        await holder.release()
    assert interrupted[0].current == staged == await staging.staged_size(session.id)


async def test_an_empty_upload_with_a_wrong_sha256_leaves_no_session(
    engine: ObjectEngine, clock, staging: SessionStaging, session_rows: UploadSessionRows
) -> None:
    uploads = make_uploads(engine, staging, session_rows, clock)
    with pytest.raises(ChecksumMismatch):
        await uploads.create(tenant="t", bucket="b", key="k", mime_type="a/b", size=0, sha256="0" * 64)
    assert await uploads.expire_due() == 0
    clock.now += 7200
    assert await uploads.expire_due() == 0  # there was no session left to expire


async def test_an_append_that_names_another_total_size_is_refused(
    engine: ObjectEngine, clock, staging: SessionStaging, session_rows: UploadSessionRows
) -> None:
    uploads = make_uploads(engine, staging, session_rows, clock)
    created = await uploads.create(tenant="t", bucket="b", key="k", mime_type="a/b", size=10)
    with pytest.raises(InvalidInput):
        await uploads.append(
            "t", "b", created.session.id, body(b"01234"), expected_offset=0, expected_size=99
        )
    assert (await uploads.get("t", "b", created.session.id))[1] == 0
    done = await uploads.append("t", "b", created.session.id, body(b"0123456789"), expected_size=10)
    assert done.completed is not None


async def test_an_append_with_a_chunk_digest_counts_only_if_it_matches(
    engine: ObjectEngine, clock, staging: SessionStaging, session_rows: UploadSessionRows
) -> None:
    uploads = make_uploads(engine, staging, session_rows, clock)
    data = os.urandom(2_500_000)
    created = await uploads.create(tenant="t", bucket="b", key="k", mime_type="a/b", size=len(data))
    first = data[:1_500_000]
    right = ChunkDigest("sha1", hashlib.sha1(first).digest())
    wrong = ChunkDigest("md5", hashlib.md5(b"something else").digest())
    with pytest.raises(ChecksumMismatch):
        await uploads.append("t", "b", created.session.id, body(first), chunk_digest=wrong)
    assert (await uploads.get("t", "b", created.session.id))[1] == 0
    await uploads.append(
        "t", "b", created.session.id, body(first[:700_000], first[700_000:]), chunk_digest=right
    )
    assert (await uploads.get("t", "b", created.session.id))[1] == 1_500_000
    rest = data[1_500_000:]
    done = await uploads.append(
        "t",
        "b",
        created.session.id,
        body(rest),
        chunk_digest=ChunkDigest("sha256", hashlib.sha256(rest).digest()),
    )
    assert done.completed is not None and done.completed.sha256 == hashlib.sha256(data).hexdigest()


async def test_a_chunk_with_a_digest_cut_short_keeps_nothing(
    engine: ObjectEngine, clock, staging: SessionStaging, session_rows: UploadSessionRows
) -> None:
    uploads = make_uploads(engine, staging, session_rows, clock)
    created = await uploads.create(tenant="t", bucket="b", key="k", mime_type="a/b", size=3_000_000)
    chunk = os.urandom(2_000_000)

    async def cut() -> AsyncIterator[bytes]:
        yield chunk[:1_500_000]
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await uploads.append(
            "t",
            "b",
            created.session.id,
            cut(),
            chunk_digest=ChunkDigest("sha1", hashlib.sha1(chunk).digest()),
        )
    assert (await uploads.get("t", "b", created.session.id))[1] == 0


async def test_parts_in_any_order_join_in_the_order_given(
    engine: ObjectEngine, clock, staging: SessionStaging, session_rows: UploadSessionRows
) -> None:
    uploads = make_uploads(engine, staging, session_rows, clock)
    pieces = [os.urandom(n) for n in (1_300_000, 5, 2_000_000)]
    data = b"".join(pieces)
    created = await uploads.create(
        tenant="t",
        bucket="b",
        key=None,
        mime_type="a/b",
        size=len(data),
        filename="x.bin",
        object_expires_after=3600,
        in_parts=True,
    )
    upload_id = created.session.id
    ids = [""] * 3
    async with anyio.create_task_group() as parallel:

        async def add(i: int) -> None:
            ids[i] = await uploads.add_part("t", "b", upload_id, body(pieces[i]), max_bytes=4_000_000)

        for i in (2, 0, 1):
            parallel.start_soon(add, i)
    with pytest.raises(InvalidInput, match="2000005 bytes"):
        await uploads.complete_parts("t", "b", upload_id, ids[1:])
    with pytest.raises(InvalidInput, match="twice"):
        await uploads.complete_parts("t", "b", upload_id, [ids[0], ids[0], ids[2]])
    with pytest.raises(InvalidInput, match="No such part"):
        await uploads.complete_parts("t", "b", upload_id, [ids[0], ids[1], "part-../../x"])
    with pytest.raises(ChecksumMismatch):
        await uploads.complete_parts("t", "b", upload_id, ids, md5=hashlib.md5(b"no").hexdigest())
    record = await uploads.complete_parts("t", "b", upload_id, ids, md5=hashlib.md5(data).hexdigest())
    assert record.key == record.id and record.filename == "x.bin"
    assert record.expires_at == record.created_at + 3600
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    assert await read_all(engine, record) == data
    for start, end in [
        (0, 1),
        (1_299_999, 1_300_006),
        (1_300_005, 1_300_005),
        (1_300_004, len(data)),
        (5, 3_000_000),
    ]:
        ranged = b"".join([chunk async for chunk in engine.read(record, start, end)])
        assert ranged == data[start:end], (start, end)
    assert await staging.part_sizes(upload_id) == {}
    await engine.delete("t", "b", record.id)
    assert not await blob_exists(engine, record.id)
    with pytest.raises(UploadCompleted):
        await uploads.add_part("t", "b", upload_id, body(b"late"), max_bytes=10)


async def test_parts_may_not_outgrow_the_upload(
    engine: ObjectEngine, clock, staging: SessionStaging, session_rows: UploadSessionRows
) -> None:
    uploads = make_uploads(engine, staging, session_rows, clock)
    created = await uploads.create(
        tenant="t", bucket="b", key=None, mime_type="a/b", size=10, filename="f", in_parts=True
    )
    upload_id = created.session.id
    with pytest.raises(InvalidInput, match="parts joined"):
        await uploads.append("t", "b", upload_id, body(b"12"))
    appended = await uploads.create(tenant="t", bucket="b", key="k", mime_type="a/b", size=10)
    with pytest.raises(InvalidInput, match="appends at an offset"):
        await uploads.add_part("t", "b", appended.session.id, body(b"12"), max_bytes=8)
    with pytest.raises(InvalidInput, match="appends at an offset"):
        await uploads.complete_parts("t", "b", appended.session.id, [])
    with pytest.raises(TooLarge, match="at most 4 bytes"):
        await uploads.add_part("t", "b", upload_id, body(b"12345"), max_bytes=4)
    await uploads.add_part("t", "b", upload_id, body(b"123456"), max_bytes=8)
    with pytest.raises(TooLarge, match="declared size"):
        await uploads.add_part("t", "b", upload_id, body(b"12", b"345"), max_bytes=8)
    assert sorted((await staging.part_sizes(upload_id)).values()) == [6]
    with pytest.raises(NotFound):
        await uploads.add_part("other", "b", upload_id, body(b"1"), max_bytes=8)
    await uploads.cancel("t", "b", upload_id)
    assert await staging.part_sizes(upload_id) == {}


async def test_an_append_that_waited_for_a_completing_one_reports_completed(
    engine: ObjectEngine, clock, staging: SessionStaging, session_rows: UploadSessionRows
) -> None:
    uploads = make_uploads(engine, staging, session_rows, clock)
    created = await uploads.create(tenant="t", bucket="b", key="k", mime_type="a/b", size=4)
    upload_id = created.session.id
    release = anyio.Event()

    async def slow_tail() -> AsyncIterator[bytes]:
        yield b"ab"
        await release.wait()
        yield b"cd"

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(uploads.append, "t", "b", upload_id, slow_tail())
        await anyio.sleep(0.1)
        with pytest.raises(UploadCompleted):  # the holder is asked to let go, but completes first
            release.set()
            await uploads.append("t", "b", upload_id, body(b"cd"), expected_offset=2)
    if isinstance(staging, LocalBlobStore):
        assert not (staging.root / "sessions" / upload_id).exists()
    else:  # on S3 only the session's sealed bytes stay: the object's pointer names them
        assert isinstance(staging, S3SessionStaging)
        prefix = staging.blobs.session_prefix(upload_id)
        client = await staging.blobs.client()
        listing = await client.list_objects_v2(Bucket=staging.blobs.bucket, Prefix=prefix)
        assert [item["Key"] for item in listing.get("Contents", [])] == [f"{prefix}data"]
