"""The ``UploadSessionRows`` contract (``core/ports/sessions.py``), on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets

import pytest
from _adapters import on, session_id

from cairn.core.errors import Conflict
from cairn.core.ports.objects import ObjectRows
from cairn.core.ports.sessions import UploadSessionRows
from cairn.core.records import ObjectRecord, UploadSession

pytestmark = [pytest.mark.anyio, on("sqlite", "postgres")]

NOW = 1_800_000_000


def session(*, tenant: str = "t", key: str = "k", expires_at: int = NOW + 3600) -> UploadSession:
    return UploadSession(
        id=session_id(),
        tenant=tenant,
        bucket="b",
        key=key,
        filename="f",
        mime_type="text/plain",
        size=3,
        sha256=None,
        purpose="p",
        created_at=NOW,
        expires_at=expires_at,
        object_id=None,
    )


def record(key: str = "k") -> ObjectRecord:
    return ObjectRecord(
        id="file-" + secrets.token_hex(16),
        tenant="t",
        bucket="b",
        key=key,
        filename="f",
        mime_type="text/plain",
        bytes=3,
        sha256="0" * 64,
        purpose="p",
        created_at=NOW,
        expires_at=None,
    )


async def test_sessions_are_scoped_by_tenant_and_gone_once_expired_or_deleted(
    session_rows: UploadSessionRows,
) -> None:
    mine = session(tenant="alice")
    await session_rows.insert_session(mine)
    assert await session_rows.get_session("alice", mine.id, NOW) == mine
    assert await session_rows.get_session("bob", mine.id, NOW) is None
    assert await session_rows.delete_session("bob", mine.id) is None
    assert await session_rows.get_session("alice", mine.id, mine.expires_at) is None  # expired
    assert await session_rows.delete_session("alice", mine.id) == mine
    assert await session_rows.get_session("alice", mine.id, NOW) is None
    assert await session_rows.delete_session("alice", mine.id) is None


async def test_completion_replaces_the_key_once_and_only_once(
    session_rows: UploadSessionRows, object_rows: ObjectRows
) -> None:
    held = record()
    await object_rows.insert_object(held)
    upload = session()
    await session_rows.insert_session(upload)
    done = record()
    assert await session_rows.complete_session(upload.id, done) == held
    assert await object_rows.get_object_by_key("t", "b", "k", NOW) == done
    completed = await session_rows.get_session("t", upload.id, NOW)
    assert completed is not None and completed.object_id == done.id
    with pytest.raises(Conflict):
        await session_rows.complete_session(upload.id, record())
    assert await object_rows.get_object_by_key("t", "b", "k", NOW) == done


async def test_a_deleted_session_cannot_complete(
    session_rows: UploadSessionRows, object_rows: ObjectRows
) -> None:
    upload = session(key="never")
    await session_rows.insert_session(upload)
    await session_rows.delete_session("t", upload.id)
    with pytest.raises(Conflict):
        await session_rows.complete_session(upload.id, record("never"))
    assert await object_rows.get_object_by_key("t", "b", "never", NOW) is None


async def test_expired_sessions_soonest_first_any_tenant_and_kept_until_deleted(
    session_rows: UploadSessionRows,
) -> None:
    later, sooner, other, live = (
        session(expires_at=NOW - 10),
        session(expires_at=NOW - 20),
        session(tenant="u", expires_at=NOW - 15),
        session(expires_at=NOW + 10),
    )
    for s in (later, sooner, other, live):
        await session_rows.insert_session(s)
    assert [s.id for s in await session_rows.expired_sessions(NOW, limit=10)] == [
        sooner.id,
        other.id,
        later.id,
    ]
    assert [s.id for s in await session_rows.expired_sessions(NOW, limit=2)] == [sooner.id, other.id]
    await session_rows.delete_session("t", sooner.id)
    assert [s.id for s in await session_rows.expired_sessions(NOW, limit=10)] == [other.id, later.id]
