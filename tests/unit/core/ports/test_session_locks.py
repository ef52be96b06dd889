"""The ``SessionLocks`` contract (``core/ports/locks.py``): PostgreSQL advisory locks, as two replicas
hold them (two pools on one database), and the local staging's own file locks, which keep the same
promises through ``SessionStaging.acquire``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from _adapters import session_id

from cairn.adapters.locks_pg import PgSessionLocks
from cairn.compose import composed
from cairn.core.errors import Locked
from cairn.core.ports.locks import SessionLocks
from cairn.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["postgres", "local staging"])
def postgres(request: pytest.FixtureRequest) -> str | None:
    """The database of the PostgreSQL locks; None for the local staging's."""
    return request.getfixturevalue("postgres_url") if request.param == "postgres" else None


@pytest.fixture
async def replicas(postgres: str | None, tmp_path: Path) -> AsyncIterator[list[SessionLocks]]:
    """Two holders of one session store, as two processes or replicas."""
    if postgres is not None:
        locks = [PgSessionLocks(postgres), PgSessionLocks(postgres)]
        try:
            yield list(locks)
        finally:
            for lock in locks:
                await lock.close()
        return
    settings = Settings(data_dir=tmp_path / "data", rate_limits=False)
    async with composed(settings) as one, composed(settings) as other:
        yield [one.staging, other.staging]


async def test_a_free_session_is_taken_at_once(replicas: list[SessionLocks]) -> None:
    a, b = replicas
    started = time.monotonic()
    held = await a.acquire(session_id(), wait=5)
    other = await b.acquire(session_id(), wait=5)  # sessions do not share a lock
    assert time.monotonic() - started < 2
    assert not await held.release_requested()
    await held.release()
    await other.release()


async def test_the_holder_is_asked_to_let_go_and_the_newcomer_gets_the_session(
    replicas: list[SessionLocks],
) -> None:
    a, b = replicas
    session = session_id()
    holder = await a.acquire(session, wait=5)

    async def let_go_when_asked() -> None:
        while not await holder.release_requested():
            await anyio.sleep(0.05)
        await holder.release()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(let_go_when_asked)
        newcomer = await b.acquire(session, wait=5)
    assert not await newcomer.release_requested()  # the request was withdrawn once granted
    await newcomer.release()


async def test_a_holder_that_does_not_let_go_leaves_the_newcomer_locked_after_the_wait(
    replicas: list[SessionLocks],
) -> None:
    a, b = replicas
    session = session_id()
    holder = await a.acquire(session, wait=5)
    try:
        started = time.monotonic()
        with pytest.raises(Locked):
            await b.acquire(session, wait=0.5)
        assert 0.4 < time.monotonic() - started < 5
    finally:
        await holder.release()
    await (await b.acquire(session, wait=0.5)).release()  # free once released
