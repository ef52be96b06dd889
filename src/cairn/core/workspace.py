"""Workspaces: a folder view of one tenant's bucket ``workspace``.

A file's path is its key (``docs/spec.pdf``); folders are key prefixes ending in ``/``. A folder exists
while some key lies under it, and also once an upload named it as its ``dir``: that upload leaves a
*folder marker* for the folder and each of its parents, an empty object whose key is the folder's path
with a trailing ``/`` (``docs/``, the S3 console's convention). A marker sorts first among its folder's
keys, so it is what a listing meets first and its time is the folder's ``modified_at``; it keeps an
emptied folder listed and puts empty folders into zips. Markers have ids like every object and show in
the bucket's own listing (``/v1/buckets/workspace``); the buckets face cannot address them by key, since
keys there never end in ``/``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

from .errors import Conflict, InvalidInput, NotFound, TooLarge
from .objects import Folded, ObjectEngine, StagedBlob
from .paths import validate_portable_path
from .records import ObjectRecord
from .zipstream import ZipEntry

BUCKET = "workspace"
FOLDER_MIME_TYPE = "application/x-directory"
FOLDER_PURPOSE = "folder"
ZIP_ROOT = "user_upload/"
MAX_ZIP_ENTRIES = 100_000
ZIP_SCAN_BATCH = 1000


@dataclass(slots=True)  # not frozen: a listing makes 10,000 of these, and frozen ones cost 3x as much
class Item:
    """One entry of a folder listing, fields in the order the API shows them; ``path`` is relative to the
    workspace root, ``modified_at`` in UNIX seconds."""

    name: str
    is_dir: bool
    size: int
    modified_at: float
    path: str


@dataclass(frozen=True, slots=True)
class Listing:
    base: str
    items: list[Item]
    next_cursor: str | None


def folder_path(raw: str | None, *, param: str) -> str:
    """A folder as given by a client: absent, empty or ``.`` is the root (``""``)."""
    if raw is None or raw in ("", "."):
        return ""
    return validate_portable_path(raw, param=param)


def _prefix(folder: str) -> str:
    return folder + "/" if folder else ""


class Workspace:
    """One tenant's workspace on the object engine."""

    def __init__(self, engine: ObjectEngine, tenant: str) -> None:
        self._engine = engine
        self._tenant = tenant

    async def put(self, staged: StagedBlob, *, folder: str, name: str, mime_type: str) -> ObjectRecord:
        """Commit staged bytes as ``folder/name`` (``name``: a sanitised filename), replacing the file there
        atomically; the folder and its parents get their markers. Refuses (409) a file where a folder is,
        or a folder where a file is."""
        path = validate_portable_path(f"{_prefix(folder)}{name}", param="filename")
        if await self._holds_anything(path + "/"):
            raise Conflict(f"'{path}' is a folder; a file cannot replace it.", param="filename")
        await self._make_folders(folder)
        return await self._engine.commit(
            staged,
            tenant=self._tenant,
            bucket=BUCKET,
            key=path,
            filename=path.rsplit("/", 1)[-1],
            mime_type=mime_type,
            purpose=BUCKET,
            replace=True,
        )

    async def _make_folders(self, folder: str) -> None:
        if not folder or await self._find(folder + "/") is not None:
            return  # the root, or a folder made before (with its parents)
        parts = folder.split("/")
        for depth in range(1, len(parts) + 1):
            path = "/".join(parts[:depth])
            if await self._find(path) is not None:
                raise Conflict(f"'{path}' is a file; it cannot hold a folder.", param="dir")
            if await self._find(path + "/") is None:
                await self._engine.commit(
                    await self._engine.stage(_nothing()),
                    tenant=self._tenant,
                    bucket=BUCKET,
                    key=path + "/",
                    filename=parts[depth - 1],
                    mime_type=FOLDER_MIME_TYPE,
                    purpose=FOLDER_PURPOSE,
                    replace=True,  # another upload may be making the same folder right now
                )

    async def list(self, folder: str, *, limit: int, cursor: str | None = None) -> Listing:
        """The folder's files and subfolders in key order (see ``Item``); 404 if there is no such folder,
        400 if ``folder`` is a file."""
        prefix = _prefix(folder)
        if cursor is not None and (not cursor.startswith(prefix) or len(cursor) <= len(prefix)):
            raise InvalidInput("cursor does not belong to this folder's listing.", param="cursor")
        listing = await self._engine.list_keys(
            self._tenant,
            BUCKET,
            prefix=prefix,
            delimiter="/",
            limit=limit,
            after=cursor or prefix or None,  # a folder's marker (its own key) is not one of its items
        )
        if not listing.entries and cursor is None:
            await self._require_folder(folder)
        items = [self._item(entry, prefix) for entry in listing.entries]
        next_cursor = None
        if listing.has_more:
            last = listing.entries[-1]
            next_cursor = last.prefix if isinstance(last, Folded) else last.key
        return Listing(base=folder or ".", items=items, next_cursor=next_cursor)

    @staticmethod
    def _item(entry: ObjectRecord | Folded, prefix: str) -> Item:
        if isinstance(entry, Folded):
            path = entry.prefix[:-1]
            return Item(path[len(prefix) :], True, 0, float(entry.first.created_at), path)
        return Item(entry.key[len(prefix) :], False, entry.bytes, float(entry.created_at), entry.key)

    async def _require_folder(self, folder: str) -> None:
        if not folder or await self._find(folder + "/") is not None:
            return
        if await self._find(folder) is not None:
            raise InvalidInput(f"'{folder}' is a file, not a folder.", param="path")
        raise NotFound(f"No such file or folder: '{folder[:80]}'.", param="path")

    async def find_file(self, path: str) -> ObjectRecord | None:
        return await self._find(path) if path else None

    async def zip_entries(self, folder: str) -> list[ZipEntry]:
        """Everything under ``folder`` as zip entries named ``user_upload/<path>``: files, and folder
        markers as folder entries (so empty folders survive). 404 if there is no such folder."""
        prefix = _prefix(folder)
        entries: list[ZipEntry] = []
        after: str | None = None
        while True:
            page = await self._engine.list_keys(
                self._tenant, BUCKET, prefix=prefix, delimiter="", limit=ZIP_SCAN_BATCH, after=after
            )
            for record in page.entries:
                assert isinstance(record, ObjectRecord)  # no delimiter: nothing is folded
                is_folder = record.key.endswith("/")
                entries.append(
                    ZipEntry(
                        name=ZIP_ROOT + record.key,
                        size=0 if is_folder else record.bytes,
                        modified_at=record.created_at,
                        chunks=None if is_folder else partial(self._engine.read, record),
                    )
                )
            if len(entries) > MAX_ZIP_ENTRIES:
                raise TooLarge(f"The folder holds more than {MAX_ZIP_ENTRIES} entries; download it in parts.")
            if not page.has_more:
                break
            after = page.entries[-1].key  # type: ignore[union-attr]
        if not entries:
            await self._require_folder(folder)
        return entries

    async def _find(self, key: str) -> ObjectRecord | None:
        try:
            return await self._engine.get_by_key(self._tenant, BUCKET, key)
        except NotFound:
            return None

    async def _holds_anything(self, prefix: str) -> bool:
        listing = await self._engine.list_keys(self._tenant, BUCKET, prefix=prefix, delimiter="", limit=1)
        return bool(listing.entries)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield
