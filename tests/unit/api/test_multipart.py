"""The streaming multipart reader, fed the way a socket feeds it: in arbitrary pieces."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from cairn.api.multipart import MAX_FIELD_BYTES, FilePart, boundary_of, read_form
from cairn.core.errors import InvalidInput

pytestmark = pytest.mark.anyio
BOUNDARY = b"----cairnboundary42"


def form(*parts: tuple[str, str | None, bytes], end: bool = True) -> bytes:
    body = b""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        body += b"--" + BOUNDARY + b"\r\nContent-Disposition: " + disposition.encode() + b"\r\n"
        if filename is not None:
            body += b"Content-Type: application/pdf\r\n"
        body += b"\r\n" + value + b"\r\n"
    return body + (b"--" + BOUNDARY + b"--\r\n" if end else b"")


async def pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


async def parse(
    body: bytes, size: int = 65536
) -> tuple[dict[str, str], list[tuple[FilePart, dict[str, str], bytes]]]:
    files = []

    async def on_file(part: FilePart, fields: dict[str, str], data: AsyncIterator[bytes]) -> None:
        files.append((part, fields, b"".join([d async for d in data])))

    fields = await read_form(pieces(body, size), BOUNDARY, file_field="file", on_file=on_file)
    return fields, files


@pytest.mark.parametrize("size", [1, 2, 3, 7, 19, 64, 1000, 1 << 20])
async def test_fields_and_file_survive_any_split(size: int) -> None:
    payload = os.urandom(5000) + b"\r\n--" + BOUNDARY[:-1] + b"\r\n"  # boundary-like bytes inside the file
    body = form(("purpose", None, b"assistants"), ("file", "résumé.pdf", payload), ("x", None, b"1"))
    fields, files = await parse(body, size)
    assert fields == {"purpose": "assistants", "x": "1"}
    [(part, before, data)] = files
    assert (part.filename, part.content_type, before, data) == (
        "résumé.pdf",
        "application/pdf",
        {"purpose": "assistants"},
        payload,
    )


async def test_missing_closing_boundary_is_refused() -> None:
    with pytest.raises(InvalidInput, match="ended before"):
        await parse(form(("file", "a.txt", b"abc"), end=False))


async def test_truncated_inside_the_file_is_refused() -> None:
    with pytest.raises(InvalidInput):
        await parse(form(("file", "a.txt", os.urandom(10000)))[:5000])


@pytest.mark.parametrize(
    "body",
    [
        b"not multipart at all",
        b'--wrong\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n--wrong--\r\n',
        b"--" + BOUNDARY + b"\r\nContent-Type: text/plain\r\n\r\nx\r\n--" + BOUNDARY + b"--\r\n",
        b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data\r\n\r\nx\r\n--" + BOUNDARY + b"--\r\n",
    ],
)
async def test_malformed_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(InvalidInput):
        await parse(body)


async def test_second_file_part_and_foreign_file_fields_are_refused() -> None:
    with pytest.raises(InvalidInput, match="Unexpected file field"):
        await parse(form(("file", "a", b"1"), ("file", "b", b"2")))
    with pytest.raises(InvalidInput, match="Unexpected file field"):
        await parse(form(("other", "a", b"1")))


async def test_field_size_and_count_are_capped() -> None:
    with pytest.raises(InvalidInput, match="longer than"):
        await parse(form(("purpose", None, b"x" * (MAX_FIELD_BYTES + 1))))
    with pytest.raises(InvalidInput, match="Too many"):
        await parse(form(*[(f"f{i}", None, b"v") for i in range(40)]))


def test_boundary_is_required() -> None:
    assert boundary_of("multipart/form-data; boundary=abc") == b"abc"
    for bad in ("", "application/json", "multipart/form-data", "multipart/mixed; boundary=abc"):
        with pytest.raises(InvalidInput):
            boundary_of(bad)
