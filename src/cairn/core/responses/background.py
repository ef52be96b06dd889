"""Background responses as durable jobs (``core.jobs``, D29): any replica runs a queued response, and its
events are kept for streams read again (``core.responses.events``).

- The job checks everything again (``Responses.start``) as the response was queued with it; a request
  that no longer holds (a previous response deleted since) makes the response ``failed``.
- A response runs at most once. The row moves from ``queued`` to ``in_progress`` in one guarded write
  before the model sees anything; a job that finds its response already ``in_progress`` is a second
  attempt after its first stopped (the process died, its lease was lost) and marks the response
  ``failed`` rather than run it again from the start under the same events. A response cancelled
  before its job ran is left as it is.
- A cancel (``Responses.cancel``) writes ``cancelled`` and cancels the job; the run stops at its next
  await and writes nothing more.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

from ..errors import CairnError
from ..jobs import Lease
from ..records import JobRecord
from .service import UNFINISHED, Responses

INTERRUPTED = {"code": "server_error", "message": "The server running the response stopped before it ended."}


class BackgroundResponses:
    """The job handler; ``JobRunner.register(BACKGROUND_JOB, handler, failed=handler.failed)``."""

    def __init__(self, responses: Responses) -> None:
        self._responses = responses

    async def __call__(self, job: JobRecord, lease: Lease) -> dict[str, Any] | None:
        rows, tenant, payload = self._responses.rows, job.tenant, job.payload
        response_id = payload["response_id"]
        row = await rows.get_response(tenant, response_id)
        if row is None or row.status != "queued":
            if row is not None and row.status == "in_progress":
                await self._fail(job, INTERRUPTED)
            return None
        try:
            run = await self._responses.start(
                tenant, payload["body"], identity=(response_id, payload["created_at"])
            )
        except CairnError as exc:
            await self._fail(job, {"code": exc.code, "message": exc.message})
            return None
        running = replace(row, status="in_progress", response={**row.response, "status": "in_progress"})
        if not await rows.finish_response(running, ("queued",)):
            return None  # cancelled meanwhile
        async with self._responses.log.writer(tenant, response_id) as writer:
            events = self._responses.events(run)
            async with contextlib.aclosing(events):
                async for event in events:
                    await writer.add(event)
        return {"status": run.response["status"]}

    async def failed(self, job: JobRecord, error: dict[str, str]) -> None:
        """The job failed for good (an error, or abandoned): its response, if still unfinished, fails."""
        await self._fail(job, error)

    async def _fail(self, job: JobRecord, error: dict[str, str]) -> None:
        rows, response_id = self._responses.rows, job.payload["response_id"]
        row = await rows.get_response(job.tenant, response_id)
        if row is None or row.status not in UNFINISHED:
            return
        shown = {
            **row.response,
            "status": "failed",
            "error": {"code": error["code"], "message": error["message"]},
        }
        await rows.finish_response(replace(row, status="failed", response=shown), UNFINISHED)
        self._responses.log.ring(response_id)
