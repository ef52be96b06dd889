"""The kept stream events of background responses: written as the run makes them, read again by any
client on any replica from any ``sequence_number`` (``GET /v1/responses/{id}?stream=true&starting_after=N``).

- Writing: a run's events are kept in batches (``Writer``): at most ``FLUSH_EVENTS`` events or
  ``FLUSH_SECONDS`` behind the run, and at once when it ends, so a reader never waits long and a
  stream of small deltas is not one row write each.
- Reading: ``replay`` yields the kept events after a point, then waits for more: woken at once by a
  write in this process (``ring``), and otherwise looking again every ``POLL_SECONDS`` (a run on another
  replica). It ends after the response's last event (``completed``, ``incomplete``, ``failed``), or when
  the response has ended without one (cancelled) and nothing more is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable

from ..errors import NotFound
from ..ports.inference import Json
from ..ports.responses import ResponseRows

FLUSH_EVENTS = 64
FLUSH_SECONDS = 0.05
POLL_SECONDS = 0.25
READ_BATCH = 512
ENDING = frozenset({"response.completed", "response.incomplete", "response.failed"})
UNFINISHED = ("queued", "in_progress")


class EventLog:
    def __init__(self, rows: ResponseRows) -> None:
        self._rows = rows
        self._bells: dict[str, set[asyncio.Event]] = {}

    def writer(self, tenant: str, response_id: str) -> Writer:
        return Writer(self._rows, tenant, response_id, self.ring)

    def ring(self, response_id: str) -> None:
        """Wake this process's readers of the response: something was kept, or it ended."""
        for bell in self._bells.get(response_id, ()):
            bell.set()

    async def replay(self, tenant: str, response_id: str, after: int) -> AsyncGenerator[Json, None]:
        bell = asyncio.Event()
        self._bells.setdefault(response_id, set()).add(bell)
        try:
            while True:
                bell.clear()
                batch = await self._rows.events_after(tenant, response_id, after, READ_BATCH)
                for event in batch:
                    yield event
                    after = event["sequence_number"]
                    if event["type"] in ENDING:
                        return
                if batch:
                    continue
                row = await self._rows.get_response(tenant, response_id)
                if row is None:
                    raise NotFound(f"Response '{response_id[:80]}' was deleted.", param="response_id")
                if row.status not in UNFINISHED:
                    if not await self._rows.events_after(tenant, response_id, after, 1):
                        return
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(bell.wait(), POLL_SECONDS)
        finally:
            bells = self._bells[response_id]
            bells.discard(bell)
            if not bells:
                del self._bells[response_id]


class Writer:
    """One run's events, kept in batches: ``async with`` it, ``add`` each event; what is pending is kept
    every ``FLUSH_SECONDS`` and at the end."""

    def __init__(
        self, rows: ResponseRows, tenant: str, response_id: str, ring: Callable[[str], None]
    ) -> None:
        self._rows = rows
        self._tenant = tenant
        self._response_id = response_id
        self._ring = ring
        self._pending: list[Json] = []
        self._writing = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Writer:
        self._ticker = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        await asyncio.shield(self.flush())

    async def add(self, event: Json) -> None:
        self._pending.append(event)
        if event["type"] in ENDING or len(self._pending) >= FLUSH_EVENTS:
            await self.flush()

    async def flush(self) -> None:
        async with self._writing:
            pending, self._pending = self._pending, []
            if pending:
                await self._rows.append_events(self._tenant, self._response_id, pending)
                self._ring(self._response_id)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()
