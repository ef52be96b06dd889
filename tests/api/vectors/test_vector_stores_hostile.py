"""The Vector Stores API used badly, through a real server and httpx: a file over the size bound fails
with a clear ``last_error``; eight concurrent attachments of one file make one attachment and one
ingestion; a store deleted while its batch ingests leaves no chunk and no row behind; malformed bodies
are 400s in OpenAI's envelope naming the parameter, and create nothing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa
from _support import assert_openai_error

from cairn.compose import Composition, composed
from cairn.core.records import JobStatus
from cairn.core.vectors.stores import MAX_FILES, ingestion_job_id
from cairn.settings import Settings

T = TypeVar("T")

TEXT = (
    "Basalt is a fine-grained volcanic rock that forms when lava rich in iron and magnesium cools quickly "
    "at the surface. Columns of basalt crack into hexagons as the flow shrinks.\n\n"
)


def uploaded(http: httpx.Client, name: str, data: bytes) -> str:
    response = http.post("/v1/files", files={"file": (name, data)}, data={"purpose": "assistants"})
    assert response.status_code == 200, response.text
    return response.json()["id"]


def new_store(http: httpx.Client, **body: Any) -> str:
    response = http.post("/v1/vector_stores", json=body)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def settled(http: httpx.Client, store_id: str, file_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (file := http.get(f"/v1/vector_stores/{store_id}/files/{file_id}").json())[
        "status"
    ] == "in_progress":
        assert time.monotonic() < deadline, "the ingestion did not end"
        time.sleep(0.05)
    return file


def inspect(server, look: Callable[[Composition], Awaitable[T]]) -> T:
    """What the server's database holds, read through a composition of its own settings."""

    async def run() -> T:
        async with composed(server.settings) as composition:
            return await look(composition)

    return asyncio.run(run())


def test_a_file_over_the_size_bound_fails_with_a_clear_error(tmp_path_factory, start_servers) -> None:
    server = start_servers(
        Settings(
            data_dir=tmp_path_factory.mktemp("small"),
            rate_limits=False,
            min_free_bytes=0,
            max_file_bytes=1024,
        )
    )
    with server.client() as http:
        large = uploaded(http, "large.txt", TEXT.encode() * 8)
        store = new_store(http, file_ids=[large])
        failed = settled(http, store, large)
        assert failed["status"] == "failed" and failed["last_error"]["code"] == "invalid_file"
        message = failed["last_error"]["message"]
        assert "`large.txt` is too large for file search" in message and "at most 1024" in message
        shown = http.get(f"/v1/vector_stores/{store}").json()
        assert (shown["status"], shown["file_counts"]["failed"]) == ("completed", 1)
        content = http.get(f"/v1/vector_stores/{store}/files/{large}/content")
        assert_openai_error(content, 400, code="invalid_file")


def test_the_same_file_attached_eight_times_at_once_is_one_attachment_and_one_ingestion(
    model_server, model_tenant, http
) -> None:
    file_id = uploaded(http, "columns.txt", TEXT.encode())
    store = new_store(http)
    start = threading.Barrier(8)

    def attach(_: int) -> httpx.Response:
        with model_server.client(model_tenant) as own:
            start.wait()
            return own.post(f"/v1/vector_stores/{store}/files", json={"file_id": file_id})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(attach, range(8)))
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    assert {(a.json()["id"], a.json()["created_at"]) for a in answers} == {
        (file_id, answers[0].json()["created_at"])
    }
    assert settled(http, store, file_id)["status"] == "completed"
    listed = http.get(f"/v1/vector_stores/{store}/files").json()["data"]
    assert [f["id"] for f in listed] == [file_id]
    counts = http.get(f"/v1/vector_stores/{store}").json()["file_counts"]
    assert (counts["completed"], counts["total"]) == (1, 1)
    hits = http.post(
        f"/v1/vector_stores/{store}/search", json={"query": "hexagons", "search_mode": "keyword"}
    ).json()["data"]
    assert len(hits) == 1  # the file's one chunk, once

    async def job(composition: Composition) -> Any:
        file = await composition.vector_store_rows.get_file(model_tenant.name, store, file_id)
        assert file is not None and file.generation == 1
        return await composition.job_rows.get(model_tenant.name, ingestion_job_id(file))

    ran = inspect(model_server, job)
    assert (ran.status, ran.attempts) == (JobStatus.SUCCEEDED, 1)


def test_a_store_deleted_while_its_batch_ingests_leaves_no_chunk_and_no_row(
    model_server, model_tenant, http
) -> None:
    file_ids = [
        uploaded(http, f"part{n}.txt", f"Part {n} of the basalt chronicle.\n\n{TEXT * 20}".encode())
        for n in range(4)
    ]
    store = new_store(http)
    batch = http.post(f"/v1/vector_stores/{store}/file_batches", json={"file_ids": file_ids}).json()
    assert batch["status"] == "in_progress"
    deleted = http.delete(f"/v1/vector_stores/{store}")
    assert deleted.json() == {"id": store, "object": "vector_store.deleted", "deleted": True}
    for path in (f"/{store}", f"/{store}/files", f"/{store}/file_batches/{batch['id']}"):
        assert_openai_error(http.get(f"/v1/vector_stores{path}"), 404)

    async def left(composition: Composition) -> dict[str, Any]:
        async def count(statement: str) -> int:
            values = {"t": model_tenant.name, "s": store}
            return await composition.database.runner.read(
                lambda c: c.execute(sa.text(statement), values).scalar_one()
            )

        deadline = time.monotonic() + 60
        while await count("SELECT count(*) FROM jobs WHERE tenant = :t AND status IN ('queued', 'running')"):
            assert time.monotonic() < deadline, "the ingestions did not stop"
            await asyncio.sleep(0.05)
        index = composition.vector_index
        return {
            "rows": await count("SELECT count(*) FROM vector_store_files WHERE store_id = :s")
            + await count("SELECT count(*) FROM vector_store_file_batches WHERE store_id = :s")
            + await count("SELECT count(*) FROM vector_stores_index WHERE store_id = :s"),
            "orphans": await count(
                "SELECT count(*) FROM vector_chunks WHERE store NOT IN (SELECT id FROM vector_stores_index)"
            )
            + await count(
                "SELECT count(*) FROM vector_files WHERE store NOT IN (SELECT id FROM vector_stores_index)"
            ),
            "hits": await index.keyword(store, "basalt chronicle", limit=10),
        }

    assert inspect(model_server, left) == {"rows": 0, "orphans": 0, "hits": []}

    fresh = new_store(http, file_ids=file_ids)
    assert {settled(http, fresh, f)["status"] for f in file_ids} == {"completed"}
    hits = http.post(
        f"/v1/vector_stores/{fresh}/search",
        json={"query": "chronicle", "search_mode": "keyword", "max_num_results": 50},
    ).json()["data"]
    assert sorted(h["file_id"] for h in hits) == sorted(file_ids)  # each file's first chunk, once


def test_malformed_bodies_are_400_naming_the_parameter_and_create_nothing(http) -> None:
    store = new_store(http)
    at = f"/v1/vector_stores/{store}"
    before = http.get("/v1/vector_stores", params={"limit": 100}).json()["data"]
    too_many = [f"file-{n}" for n in range(MAX_FILES + 1)]
    cases = [
        ("/v1/vector_stores", {"name": 5}, "name"),
        ("/v1/vector_stores", {"description": "d" * 513}, "description"),
        ("/v1/vector_stores", {"metadata": "team"}, "metadata"),
        ("/v1/vector_stores", {"metadata": {f"k{n}": "v" for n in range(17)}}, "metadata"),
        ("/v1/vector_stores", {"file_ids": "file-1"}, "file_ids"),
        ("/v1/vector_stores", {"file_ids": too_many}, "file_ids"),
        ("/v1/vector_stores", {"file_ids": [""]}, "file_ids.0"),
        (
            "/v1/vector_stores",
            {"expires_after": {"anchor": "last_active_at", "days": "7"}},
            "expires_after.days",
        ),
        ("/v1/vector_stores", {"nmae": "typo"}, "nmae"),
        (at, {"expires_after": "never"}, "expires_after"),
        (f"{at}/search", {"query": 5}, "query"),
        (f"{at}/search", {"query": ["rock"] * 17}, "query"),
        (f"{at}/search", {"query": "rock", "max_num_results": "10"}, "max_num_results"),
        (f"{at}/search", {"query": "rock", "rewrite_query": "yes"}, "rewrite_query"),
        (f"{at}/search", {"query": "rock", "filters": ["kind"]}, "filters"),
        (f"{at}/files", {"file_id": ["file-1"]}, "file_id"),
        (f"{at}/files", {}, "file_id"),
        (f"{at}/file_batches", {"file_ids": too_many}, "file_ids"),
        (f"{at}/file_batches", {"files": [{"file_id": f} for f in too_many]}, "files"),
        (f"{at}/file_batches", {"files": [{"file_id": 5}]}, "files.0.file_id"),
        (f"{at}/file_batches", {"file_ids": []}, "file_ids"),
    ]
    for path, body, param in cases:
        assert_openai_error(http.post(path, json=body), 400, code="invalid_request", param=param)
    assert http.get("/v1/vector_stores", params={"limit": 100}).json()["data"] == before
    assert http.get(f"{at}/files").json()["data"] == []
