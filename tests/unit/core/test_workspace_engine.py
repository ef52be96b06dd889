"""The workspace engine on every backend set: commits that replace a key, folder markers, listings
that fold subfolders without reading through them, and zip entries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from cairn.core.errors import Conflict, InvalidInput, NotFound
from cairn.core.objects import LIST_SCAN_BATCH, ObjectEngine
from cairn.core.ports.objects import ObjectRows
from cairn.core.ports.sessions import UploadSessionRows
from cairn.core.ports.staging import SessionStaging
from cairn.core.records import ObjectRecord
from cairn.core.uploads import UploadEngine
from cairn.core.workspace import BUCKET, Workspace

pytestmark = pytest.mark.anyio


async def stream(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def put(
    workspace: Workspace, engine: ObjectEngine, folder: str, name: str, data: bytes
) -> ObjectRecord:
    staged = await engine.stage(stream(data))
    return await workspace.put(staged, folder=folder, name=name, mime_type="text/plain")


async def read_all(engine: ObjectEngine, record: ObjectRecord) -> bytes:
    return b"".join([chunk async for chunk in engine.read(record)])


def names(listing) -> list[tuple[str, bool]]:
    return [(item["name"], item["is_dir"]) for item in listing.items]


async def test_commit_with_replace_swaps_the_object_and_reclaims_the_old_bytes(
    engine: ObjectEngine, session_rows: UploadSessionRows
) -> None:
    async def commit(data: bytes) -> ObjectRecord:
        staged = await engine.stage(stream(data))
        return await engine.commit(
            staged, tenant="t", bucket="b", key="k", filename="k", mime_type="x/y", purpose="p", replace=True
        )

    first = await commit(b"one")
    second = await commit(b"two")
    assert first.id != second.id
    assert (await engine.get_by_key("t", "b", "k")).id == second.id
    with pytest.raises(NotFound):
        await engine.get("t", None, first.id)
    assert not engine.blobs.blob_path(first.id).exists()  # type: ignore[attr-defined]
    assert await read_all(engine, second) == b"two"
    assert await session_rows.get_session("t", "upload-", engine.now()) is None


async def test_concurrent_replaces_of_one_key_leave_exactly_one_object(engine: ObjectEngine) -> None:
    async def commit(i: int) -> ObjectRecord:
        staged = await engine.stage(stream(b"%d" % i))
        return await engine.commit(
            staged, tenant="t", bucket="b", key="k", filename="k", mime_type="x/y", purpose="p", replace=True
        )

    await asyncio.gather(*(commit(i) for i in range(8)))
    listing = await engine.list_keys("t", "b", prefix="", delimiter="", limit=100)
    assert [record.key for record in listing.objects] == ["k"]
    assert await read_all(engine, listing.objects[0]) in {b"%d" % i for i in range(8)}


async def test_upload_into_a_folder_leaves_markers_for_it_and_its_parents(engine: ObjectEngine) -> None:
    workspace = Workspace(engine, "t")
    await put(workspace, engine, "a/b/c", "f.txt", b"x")
    listing = await engine.list_keys("t", BUCKET, prefix="", delimiter="", limit=100)
    assert [record.key for record in listing.objects] == ["a/", "a/b/", "a/b/c/", "a/b/c/f.txt"]
    assert [r.bytes for r in listing.objects] == [0, 0, 0, 1]
    await engine.delete_by_key("t", BUCKET, "a/b/c/f.txt")
    assert names(await workspace.list("a/b", limit=10)) == [("c", True)]  # emptied, still there
    assert names(await workspace.list("a/b/c", limit=10)) == []


async def test_files_and_folders_do_not_take_each_others_place(engine: ObjectEngine) -> None:
    workspace = Workspace(engine, "t")
    await put(workspace, engine, "", "report", b"file")
    with pytest.raises(Conflict):
        await put(workspace, engine, "report/2024", "x.txt", b"x")
    await put(workspace, engine, "docs", "a.txt", b"a")
    with pytest.raises(Conflict):
        await put(workspace, engine, "", "docs", b"file over a folder")
    with pytest.raises(InvalidInput):
        await workspace.list("report", limit=10)
    with pytest.raises(NotFound):
        await workspace.list("nothing", limit=10)


async def test_no_writer_makes_a_path_both_a_file_and_a_folder(
    engine: ObjectEngine, clock, staging: SessionStaging, session_rows: UploadSessionRows
) -> None:
    """The folder rule is the metadata store's, at commit: plain and replacing commits and upload
    sessions into the bucket ``workspace`` all meet it, both ways; other buckets keep S3's freedom."""
    workspace = Workspace(engine, "t")
    uploads = UploadEngine(engine, staging, session_rows, expires_after=3600, clock=clock)
    await put(workspace, engine, "zc/folder", "inside.txt", b"x")
    await put(workspace, engine, "", "report", b"file")
    before = ["report", "zc/", "zc/folder/", "zc/folder/inside.txt"]

    async def commit(key: str, *, replace: bool, bucket: str = BUCKET) -> ObjectRecord:
        staged = await engine.stage(stream(b"data"))
        return await engine.commit(
            staged,
            tenant="t",
            bucket=bucket,
            key=key,
            filename="f",
            mime_type="x/y",
            purpose="p",
            replace=replace,
        )

    async def session(key: str, size: int, bucket: str = BUCKET) -> str:
        created = await uploads.create(tenant="t", bucket=bucket, key=key, mime_type="x/y", size=size)
        if size:
            await uploads.append("t", bucket, created.session.id, stream(b"d" * size))
        return created.session.id

    clashes = {
        "zc/folder": "'zc/folder' is a folder",
        "zc": "'zc' is a folder",
        "report/x": "'report' is a file",
        "report/x/y": "'report' is a file",
        "zc/folder/inside.txt/z": "'zc/folder/inside.txt' is a file",
        "report/": "'report' is a file",  # a folder marker
    }
    for key, reason in clashes.items():
        for replace in (True, False):
            with pytest.raises(Conflict, match=reason):
                await commit(key, replace=replace)
        if not key.endswith("/"):
            with pytest.raises(Conflict, match=reason):
                await session(key, 0)
    assert await uploads.expire_due() == 0  # a refused empty session is not kept
    pending = (
        await uploads.create(tenant="t", bucket=BUCKET, key="report/x", mime_type="x/y", size=4)
    ).session
    with pytest.raises(Conflict, match="'report' is a file"):
        await uploads.append("t", BUCKET, pending.id, stream(b"data"))
    listing = await engine.list_keys("t", BUCKET, prefix="", delimiter="", limit=100)
    assert [record.key for record in listing.objects] == before

    await engine.delete_by_key("t", BUCKET, "report")  # the refused session keeps its bytes: complete it
    done = await uploads.append("t", BUCKET, pending.id, stream())
    assert done.completed is not None and await read_all(engine, done.completed) == b"data"
    await commit("zc/folder2", replace=True)
    for key in clashes:
        await commit(key, replace=False, bucket="other")
    with pytest.raises(Conflict, match="'zc/folder' is a folder"):
        await put(workspace, engine, "zc", "folder", b"x")
    with pytest.raises(Conflict, match="'report/x' is a file"):
        await put(workspace, engine, "report/x/deeper", "y.txt", b"y")


async def test_listing_folds_subfolders_in_key_order_and_pages_by_cursor(engine: ObjectEngine) -> None:
    workspace = Workspace(engine, "t")
    for folder, name in [("", "b.txt"), ("b", "x"), ("", "a"), ("z/y", "deep"), ("", "数据.csv")]:
        await put(workspace, engine, folder, name, b"1")
    root = await workspace.list("", limit=10)
    assert names(root) == [("a", False), ("b.txt", False), ("b", True), ("z", True), ("数据.csv", False)]
    assert [item["path"] for item in root.items] == ["a", "b.txt", "b", "z", "数据.csv"]
    assert root.base == "." and root.next_cursor is None
    seen = []
    cursor = None
    while True:
        page = await workspace.list("", limit=2, cursor=cursor)
        seen += names(page)
        if (cursor := page.next_cursor) is None:
            break
    assert seen == names(root)
    with pytest.raises(InvalidInput):
        await workspace.list("b", limit=2, cursor="z/")


class CountingRows:
    """The real object rows, counting the rows that key listings read."""

    def __init__(self, rows: ObjectRows) -> None:
        self._rows = rows
        self.rows_read = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rows, name)

    async def list_key_sizes(self, *args: Any, **kwargs: Any) -> Sequence[tuple[str, int, int]]:
        rows = await self._rows.list_key_sizes(*args, **kwargs)
        self.rows_read += len(rows)
        return rows


async def test_a_big_subfolder_is_skipped_not_read_through(object_rows: ObjectRows, blobs, clock) -> None:
    meta = CountingRows(object_rows)
    engine = ObjectEngine(meta, blobs, max_object_bytes=1 << 20, clock=clock)  # type: ignore[arg-type]

    async def row(key: str, i: int) -> None:
        await meta.insert_object(
            ObjectRecord(
                id=f"file-{i:032x}",
                tenant="t",
                bucket=BUCKET,
                key=key,
                filename=key.rsplit("/", 1)[-1],
                mime_type="text/plain",
                bytes=1,
                sha256="0" * 64,
                purpose=BUCKET,
                created_at=0,
                expires_at=None,
            )
        )

    big = LIST_SCAN_BATCH * 3 // 2  # a scan through it would read all of them
    await asyncio.gather(*(row(f"p/big/{i:05d}", i) for i in range(big)))
    await asyncio.gather(*(row(f"p/{name}", big + i) for i, name in enumerate(["a", "c", "d"])))
    listing = await Workspace(engine, "t").list("p", limit=100)
    assert names(listing) == [("a", False), ("big", True), ("c", False), ("d", False)]
    assert meta.rows_read <= LIST_SCAN_BATCH + 4  # at most one batch of the big folder


async def test_zip_entries_name_everything_under_user_upload(engine: ObjectEngine) -> None:
    workspace = Workspace(engine, "t")
    await put(workspace, engine, "out/数据", "a.csv", b"abc")
    await put(workspace, engine, "out", "b.txt", b"b")
    await put(workspace, engine, "other", "c.txt", b"c")
    entries = await workspace.zip_entries("out")
    assert [(e.name, e.size) for e in entries] == [
        ("user_upload/out/", 0),
        ("user_upload/out/b.txt", 1),
        ("user_upload/out/数据/", 0),
        ("user_upload/out/数据/a.csv", 3),
    ]
    everything = await workspace.zip_entries("")
    assert len(everything) == 6
    with pytest.raises(NotFound):
        await workspace.zip_entries("missing")
