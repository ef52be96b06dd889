"""A streaming ``multipart/form-data`` reader on python-multipart's push parser, and the one upload flow
of the faces that take a file in a form (``upload_form``).

Unlike ``Request.form()`` nothing is spooled: text fields are collected (small and capped), and the one
file field is handed over as an async byte stream while the body is still arriving.
"""

from __future__ import annotations

import mimetypes
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from ..core.errors import InvalidInput
from ..core.keys import clean_mime_type
from ..core.objects import StagedBlob
from .deps import Services
from .http import body_chunks, declared_length

MAX_FIELDS = 16
MAX_FIELD_BYTES = 64 * 1024
MAX_FORM_OVERHEAD_BYTES = MAX_FIELDS * MAX_FIELD_BYTES + 64 * 1024


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FilePart:
    field: str
    filename: str
    content_type: str | None

    def mime_type(self, filename: str) -> str:
        """The declared media type if usable, else the one ``filename``'s extension suggests."""
        declared = clean_mime_type(self.content_type)
        return declared or mimetypes.guess_type(filename)[0] or "application/octet-stream"


def boundary_of(content_type: str) -> bytes:
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidInput("Expected a multipart/form-data body with a boundary.", param="Content-Type")
    return boundary


class _Events:
    """Pulls body chunks through the parser and queues what it reports."""

    def __init__(self, chunks: AsyncIterator[bytes], boundary: bytes) -> None:
        self._chunks = chunks
        self._queue: deque[tuple[str, Any]] = deque()
        self._exhausted = False
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        try:
            self._parser = MultipartParser(
                boundary,
                callbacks={
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_headers_finished": self._on_headers_finished,
                    "on_part_data": self._on_part_data,
                    "on_part_end": lambda: self._queue.append(("part_end", None)),
                    "on_end": lambda: self._queue.append(("end", None)),
                },
            )
        except FormParserError as exc:  # e.g. a boundary longer than the parser accepts
            raise InvalidInput(f"Unusable multipart boundary: {exc}", param="Content-Type") from exc

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[self._header_name.decode("latin-1").lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        self._queue.append(("part", self._headers))
        self._headers = {}

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._queue.append(("data", data[start:end]))

    async def next(self) -> tuple[str, Any]:
        while not self._queue:
            if self._exhausted:
                raise InvalidInput("The multipart body ended before its closing boundary.")
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._exhausted = True
                continue
            try:
                self._parser.write(chunk)
            except MultipartParseError as exc:
                raise InvalidInput(f"Malformed multipart body: {exc}") from exc
        return self._queue.popleft()


async def read_form(
    chunks: AsyncIterator[bytes],
    boundary: bytes,
    *,
    file_field: str,
    on_file: Callable[[FilePart, dict[str, str], AsyncIterator[bytes]], Awaitable[None]],
) -> dict[str, str]:
    """Read the whole form. Text fields come back as a dict; the file part named ``file_field`` goes to
    ``on_file`` together with the fields seen before it, and must be consumed there."""
    events = _Events(chunks, boundary)
    fields: dict[str, str] = {}
    seen_file = False
    while True:
        kind, payload = await events.next()
        if kind == "end":
            return fields
        if kind != "part":
            raise InvalidInput("Malformed multipart body.")
        name, filename, content_type = _describe(payload)
        if filename is not None:
            if name != file_field or seen_file:
                raise InvalidInput(f"Unexpected file field '{name}'.", param=name)
            seen_file = True
            part = FilePart(field=name, filename=filename, content_type=content_type)
            data = _part_data(events)
            await on_file(part, dict(fields), data)
            async for _ in data:  # on_file gave up early: skip the rest of the part
                pass
        else:
            if len(fields) >= MAX_FIELDS:
                raise InvalidInput(f"Too many form fields (at most {MAX_FIELDS}).")
            fields[name] = await _field_value(events, name)


async def upload_form(
    request: Request,
    services: Services,
    *,
    check: Callable[[FilePart, dict[str, str]], None],
    store: Callable[[dict[str, str], FilePart, StagedBlob], Awaitable[T]],
) -> T:
    """Stream a form's ``file`` field into staging and hand it to ``store`` with every text field.

    A declared body too large for the engine is refused before it is read. ``check`` sees the file part
    and the fields sent before it, and refuses what it can before any byte is staged; ``store`` commits
    the staged blob. If anything fails once bytes are staged (the form, ``store``, the client), they go.
    """
    engine = services.objects
    boundary = boundary_of(request.headers.get("content-type", ""))
    length = declared_length(request)
    if length is not None:
        await engine.ensure_capacity(max(0, length - MAX_FORM_OVERHEAD_BYTES))
    staged: StagedBlob | None = None
    upload: FilePart | None = None

    async def on_file(part: FilePart, fields_so_far: dict[str, str], data: AsyncIterator[bytes]) -> None:
        nonlocal staged, upload
        check(part, fields_so_far)
        upload = part
        staged = await engine.stage(data)

    try:
        fields = await read_form(
            body_chunks(request, services.settings.limits.idle_timeout),
            boundary,
            file_field="file",
            on_file=on_file,
        )
        if staged is None or upload is None:
            raise InvalidInput("Missing required parameter: 'file'.", param="file")
        return await store(fields, upload, staged)
    except BaseException:
        if staged is not None:
            with anyio.CancelScope(shield=True):
                await staged.writer.abort()
        raise


def _describe(headers: dict[str, bytes]) -> tuple[str, str | None, str | None]:
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise InvalidInput("A multipart part has no Content-Disposition header.")
    _, params = parse_options_header(disposition)
    try:
        name = params[b"name"].decode()
        filename = params[b"filename"].decode() if b"filename" in params else None
        content_type = headers["content-type"].decode("latin-1") if "content-type" in headers else None
    except KeyError as exc:
        raise InvalidInput("A multipart part has no field name.") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput("A multipart field name or filename is not valid UTF-8.") from exc
    return name, filename, content_type


async def _part_data(events: _Events) -> AsyncIterator[bytes]:
    while True:
        kind, payload = await events.next()
        if kind == "data":
            yield payload
        elif kind == "part_end":
            return
        else:
            raise InvalidInput("Malformed multipart body.")


async def _field_value(events: _Events, name: str) -> str:
    value = bytearray()
    async for data in _part_data(events):
        value += data
        if len(value) > MAX_FIELD_BYTES:
            raise InvalidInput(f"Form field '{name}' is longer than {MAX_FIELD_BYTES} bytes.", param=name)
    try:
        return value.decode()
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"Form field '{name}' is not valid UTF-8.", param=name) from exc
