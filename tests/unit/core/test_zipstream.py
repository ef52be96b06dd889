"""The streamed zip writer: exact size before the first byte, stored entries with CRCs in data
descriptors, UTF-8 names, ZIP64 only where needed. Every archive is read back with ``zipfile``."""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest

from cairn.core.zipstream import LIMIT16, LIMIT32, ZipEntry, ZipSourceChanged, archive_size, stream_archive

pytestmark = pytest.mark.anyio

MODIFIED = 1_700_000_000  # 2023-11-14 22:13:20 UTC


async def pieces(data: bytes, size: int = 100_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def file_entry(name: str, data: bytes, modified_at: int = MODIFIED) -> ZipEntry:
    return ZipEntry(name=name, size=len(data), modified_at=modified_at, chunks=partial(pieces, data))


async def build(entries: list[ZipEntry]) -> bytes:
    return b"".join([chunk async for chunk in stream_archive(entries)])


async def test_archive_round_trips_names_contents_and_times() -> None:
    files = {
        "user_upload/a.txt": b"hello",
        "user_upload/数据/报告.csv": os.urandom(300_001),
        "user_upload/emoji 🪨/empty.bin": b"",
    }
    entries = [ZipEntry("user_upload/", 0, MODIFIED), ZipEntry("user_upload/空/", 0, MODIFIED)]
    entries += [file_entry(name, data) for name, data in files.items()]
    archive = await build(entries)
    assert len(archive) == archive_size(entries)
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert opened.testzip() is None
        assert opened.namelist() == [entry.name for entry in entries]
        for name, data in files.items():
            assert opened.read(name) == data
        for info in opened.infolist():
            assert info.flag_bits & 0x800, info.filename  # UTF-8 names
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.date_time == (2023, 11, 14, 22, 13, 20)
        assert opened.getinfo("user_upload/空/").is_dir()
        assert opened.getinfo("user_upload/a.txt").flag_bits & 0x08  # CRC and sizes in a data descriptor
        assert opened.getinfo("user_upload/a.txt").external_attr >> 16 == 0o100644


async def test_descriptors_follow_the_data_and_carry_crc_and_sizes() -> None:
    archive = await build([file_entry("x", b"abc")])
    header_end = 30 + 1
    signature, crc, compressed, size = struct.unpack_from("<IIII", archive, header_end + 3)
    assert signature == 0x08074B50 and compressed == size == 3
    assert crc == zipfile.crc32(b"abc")


async def test_empty_archive() -> None:
    archive = await build([])
    assert len(archive) == archive_size([]) == 22
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert opened.namelist() == []


@pytest.mark.parametrize("modified_at", [0, -1, 2**35])
async def test_times_outside_the_dos_range_are_clamped(modified_at: int) -> None:
    with zipfile.ZipFile(io.BytesIO(await build([file_entry("x", b"1", modified_at)]))) as opened:
        assert opened.testzip() is None
        assert opened.infolist()[0].date_time[0] in (1980, 2107)


async def test_many_entries_switch_to_zip64_end_records() -> None:
    entries = [ZipEntry(f"d{i}/", 0, MODIFIED) for i in range(LIMIT16 + 5)]
    entries.append(file_entry("last.txt", b"the end"))
    archive = await build(entries)
    assert len(archive) == archive_size(entries)
    assert b"PK\x06\x06" in archive[-200:]  # ZIP64 end of central directory
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert len(opened.infolist()) == len(entries)
        assert opened.read("last.txt") == b"the end"


async def test_small_archives_use_no_zip64_records() -> None:
    archive = await build([file_entry("a", b"x" * 1000)])
    assert b"PK\x06\x06" not in archive and b"PK\x06\x07" not in archive


@pytest.mark.parametrize("actual", [b"shorter", b"longer than declared!"])
async def test_a_source_that_changed_size_breaks_the_stream(actual: bytes) -> None:
    entry = ZipEntry("x", len(b"declared size"), MODIFIED, chunks=partial(pieces, actual))
    with pytest.raises(ZipSourceChanged):
        await build([entry])


@pytest.mark.slow
async def test_entries_of_4_gib_and_beyond_use_zip64(tmp_path: Path) -> None:
    """A 4 GiB + 1 byte entry of zeros, then a small one whose offset is past 4 GiB. The archive is
    written as a sparse file (the zero blocks become holes) and read back with ``zipfile``; the big
    entry's CRC is checked against its central record and its ZIP64 data descriptor."""
    block = bytes(8 << 20)
    big = LIMIT32 + 1

    async def zeros() -> AsyncIterator[bytes]:
        for _ in range(big // len(block)):
            yield block
        yield bytes(big % len(block))

    expected_crc = 0
    for _ in range(big // len(block)):
        expected_crc = zlib.crc32(block, expected_crc)
    expected_crc = zlib.crc32(bytes(big % len(block)), expected_crc)

    entries = [ZipEntry("big.bin", big, MODIFIED, chunks=zeros), file_entry("after.txt", b"after")]
    path = tmp_path / "big.zip"
    with path.open("wb") as out:
        async for chunk in stream_archive(entries):
            if chunk is block:
                out.seek(len(chunk), os.SEEK_CUR)
            else:
                out.write(chunk)
    assert path.stat().st_size == archive_size(entries)
    with zipfile.ZipFile(path) as opened:
        info = opened.getinfo("big.bin")
        assert info.file_size == info.compress_size == big
        assert expected_crc == info.CRC
        assert opened.read("after.txt") == b"after"  # found through a ZIP64 offset, CRC checked
        assert opened.getinfo("after.txt").header_offset > LIMIT32
    with path.open("rb") as archive:
        archive.seek(30 + len("big.bin") + 20 + big)  # local header + name + ZIP64 extra + data
        assert struct.unpack("<IIQQ", archive.read(24)) == (0x08074B50, expected_crc, big, big)
