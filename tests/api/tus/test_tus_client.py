"""The real tus client, tuspy, against a real server: plain uploads (with its sha1 per-chunk checksums),
and uploads that a network failure breaks mid-chunk and that resume, either in a new uploader that
finds the upload by its stored URL or by tuspy's own retry (HEAD, then PATCH from the server's offset).
A proxy between them cuts the connection and records every request's and answer's Upload-Offset, so the
tests can show that no acknowledged byte is sent twice."""

from __future__ import annotations

import gc
import hashlib
import io
import re
import threading
from pathlib import Path

import httpx
import pytest
from _support import TcpProxy, wait_until
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError
from tusclient.storage.filestorage import FileStorage

CHUNK = 256 * 1024
_REQUEST = re.compile(rb"^(POST|PATCH|HEAD|DELETE|OPTIONS) ")
_RESPONSE = re.compile(rb"^HTTP/1\.1 (\d{3})")
_OFFSET = re.compile(rb"(?im)^upload-offset: *(\d+)\r$")


def _pattern(size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(b"tus:%d" % counter).digest()
        counter += 1
    return bytes(out[:size])


class CuttingProxy(TcpProxy):
    """A proxy to the server that breaks the connection carrying the ``cut_after``-th byte sent by
    clients (a network failure in the middle of a request), once, and forwards everything else. It logs
    each request's method and ``Upload-Offset`` and each answer's status and ``Upload-Offset``."""

    def __init__(self, target_url: str, cut_after: int) -> None:
        self._cut_after = cut_after
        self._sent = 0
        self._counting = threading.Lock()
        self.broke = False
        self.log: list[tuple[str, int | None]] = []  # ("PATCH", offset) or ("204", offset), in order
        super().__init__(target_url)

    def relay(self, data: bytes, from_client: bool) -> tuple[bytes, bool]:
        with self._counting:
            self._record(data, _REQUEST if from_client else _RESPONSE)
            if not from_client:
                return data, True
            if not self.broke and self._sent + len(data) >= self._cut_after:
                self.broke = True
                return data[: self._cut_after - self._sent], False
            self._sent += len(data)
            return data, True

    def _record(self, data: bytes, pattern: re.Pattern[bytes]) -> None:
        if match := pattern.match(data):
            offset = _OFFSET.search(data.split(b"\r\n\r\n", 1)[0] + b"\r\n")
            self.log.append((match[1].decode(), None if offset is None else int(offset[1])))

    def patches_after_acknowledgements(self) -> list[tuple[int, int]]:
        """(offset of each PATCH, highest offset acknowledged by a 204 before it was sent)."""
        acknowledged = 0
        pairs = []
        for kind, offset in self.log:
            if kind == "204" and offset is not None:
                acknowledged = max(acknowledged, offset)
            elif kind == "PATCH" and offset is not None:
                pairs.append((offset, acknowledged))
        return pairs


@pytest.fixture
def proxy(server):
    proxies: list[CuttingProxy] = []

    def make(cut_after: int) -> CuttingProxy:
        proxies.append(CuttingProxy(server.url, cut_after))
        return proxies[-1]

    yield make
    for made in proxies:
        made.close()


def _tus(url: str, key: str) -> TusClient:
    return TusClient(f"{url}/v1/tus/", headers={"Authorization": f"Bearer {key}"})


def _download(client: httpx.Client, file_id: str) -> bytes:
    response = client.get(f"/v1/files/{file_id}/content")
    assert response.status_code == 200, response.text
    return response.content


def test_tuspy_uploads_a_file_in_checksummed_chunks(server, tenant, client):
    data = _pattern(3 * CHUNK + 12_345)
    uploader = _tus(server.url, tenant.key).uploader(
        file_stream=io.BytesIO(data),
        chunk_size=CHUNK,
        metadata={"filename": "data set.csv", "filetype": "text/csv", "purpose": "assistants"},
        upload_checksum=True,  # sha1 of every PATCH body
    )
    uploader.upload()
    assert uploader.offset == len(data)
    assert uploader.url.startswith(f"{server.url}/v1/tus/upload-")
    file_id = uploader.request.response_headers["cairn-file-id"]
    described = client.get(f"/v1/files/{file_id}").json()
    assert (described["filename"], described["purpose"], described["bytes"]) == (
        "data set.csv",
        "assistants",
        len(data),
    )
    assert _download(client, file_id) == data


def test_tuspy_uploads_into_a_bucket_key(server, tenant, client):
    data = _pattern(CHUNK + 1)
    uploader = _tus(server.url, tenant.key).uploader(
        file_stream=io.BytesIO(data), chunk_size=CHUNK, metadata={"bucket": "models", "key": "v1/weights.bin"}
    )
    uploader.upload()
    described = client.get("/v1/buckets/models/v1/weights.bin").json()
    assert described["bytes"] == len(data)
    assert client.get(described["url"]).content == data


def _settled_offset(client: httpx.Client, upload_url: str) -> int:
    """The upload's offset once the broken request has let go: unchanged for half a second (on S3 the
    broken request's bytes count all at once, when it ends)."""
    path = httpx.URL(upload_url).path

    def offset() -> int:
        return int(client.head(path, headers={"Tus-Resumable": "1.0.0"}).headers["upload-offset"])

    seen = [offset()]
    assert wait_until(
        lambda: seen.append(offset()) or len(set(seen[-6:])) == 1 < len(seen) - 4, timeout=10, interval=0.1
    )
    return seen[-1]


# tuspy finds stored URLs by a fingerprint of a file it opens by path (a stream it would close), and
# leaves those files for the garbage collector.
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_tuspy_resumes_from_its_stored_url_without_resending_acknowledged_bytes(
    server, tenant, client, proxy, tmp_path: Path, request: pytest.FixtureRequest
):
    data = _pattern(4 * CHUNK)
    source = tmp_path / "model.bin"
    source.write_bytes(data)
    cutter = proxy(cut_after=int(2.5 * CHUNK))  # inside the third PATCH
    storage = FileStorage(str(tmp_path / "tus-urls.json"))
    request.addfinalizer(storage.close)
    tus = _tus(cutter.url, tenant.key)

    first = tus.uploader(file_path=str(source), chunk_size=CHUNK, store_url=True, url_storage=storage)
    with pytest.raises(TusCommunicationError):
        first.upload()
    assert cutter.broke
    acknowledged = first.offset
    assert acknowledged == 2 * CHUNK
    stored = _settled_offset(client, first.url)
    assert acknowledged <= stored <= 3 * CHUNK  # the arrived part of the broken chunk is kept

    # a new run of the program: tuspy finds the upload by the file's fingerprint and asks for its offset
    second = tus.uploader(file_path=str(source), chunk_size=CHUNK, store_url=True, url_storage=storage)
    assert second.url == first.url
    assert second.offset == stored
    second.upload()
    file_id = second.request.response_headers["cairn-file-id"]
    assert _download(client, file_id) == data

    patches = cutter.patches_after_acknowledgements()
    assert [offset for offset, _ in patches] == [0, CHUNK, 2 * CHUNK, *range(stored, len(data), CHUNK)]
    for offset, acknowledged_before in patches:
        assert offset >= acknowledged_before, patches
    # the broken request left tuspy's open file in a reference cycle: close it while its warning is ignored
    gc.collect()


def test_tuspy_retry_probes_the_offset_and_resumes(server, tenant, client, proxy):
    data = _pattern(4 * CHUNK + 777)
    cutter = proxy(cut_after=int(1.5 * CHUNK))  # inside the second PATCH
    uploader = _tus(cutter.url, tenant.key).uploader(
        file_stream=io.BytesIO(data), chunk_size=CHUNK, retries=5, retry_delay=0
    )
    uploader.upload()
    assert cutter.broke
    assert uploader.offset == len(data)
    assert _download(client, uploader.request.response_headers["cairn-file-id"]) == data
    kinds = [kind for kind, _ in cutter.log]
    assert "HEAD" in kinds  # the retry asked the server where to go on
    for offset, acknowledged_before in cutter.patches_after_acknowledgements():
        assert offset >= acknowledged_before, cutter.log
