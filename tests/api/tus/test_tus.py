"""tus 1.0 at ``/v1/tus/`` over a real server with raw HTTP (httpx, curl, sockets): discovery,
creation (with upload), HEAD, PATCH offsets and checksums, termination, expiry, disconnects, races,
tenancy, CORS and URLs behind proxies. The real tus client (tuspy) is in test_tus_client.py."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import subprocess
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest
from _support import (
    RawConnection,
    assert_no_traceback,
    auth,
    backdate_session,
    sha256,
    wait_until,
)

from cairn.app import create_app
from cairn.settings import Settings

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = {**TUS, "Content-Type": "application/offset+octet-stream"}


def _pattern(size: int, seed: int = 0) -> bytes:
    """Bytes that differ from offset to offset, so a misplaced chunk cannot go unnoticed."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(b"%d:%d" % (seed, counter)).digest()
        counter += 1
    return bytes(out[:size])


def metadata(**values: str | bytes) -> str:
    encoded = []
    for key, value in values.items():
        raw = value.encode() if isinstance(value, str) else value
        encoded.append(f"{key} {base64.b64encode(raw).decode()}")
    return ",".join(encoded)


def decode_metadata(header: str) -> dict[str, str]:
    pairs = (item.split(" ") for item in header.split(","))
    return {key: base64.b64decode(value).decode() for key, value in pairs}


def create(client: httpx.Client, size: int, body: bytes | None = None, **headers: str) -> httpx.Response:
    sent = {**(OFFSET_STREAM if body else TUS), "Upload-Length": str(size), **headers}
    return client.post("/v1/tus/", headers=sent, content=body)


def start(client: httpx.Client, size: int, **meta: str) -> str:
    """A new upload's URL (as the client resolves Location)."""
    extra = {"Upload-Metadata": metadata(**meta)} if meta else {}
    response = create(client, size, **extra)
    assert response.status_code == 201, response.text
    return str(httpx.URL(client.base_url).join(response.headers["location"]).path)


def patch(client: httpx.Client, url: str, chunk: bytes, offset: int, **headers: str) -> httpx.Response:
    return client.patch(
        url, content=chunk, headers={**OFFSET_STREAM, "Upload-Offset": str(offset), **headers}
    )


def head(client: httpx.Client, url: str) -> httpx.Response:
    return client.head(url, headers=TUS)


def offset_of(client: httpx.Client, url: str) -> int:
    response = head(client, url)
    assert response.status_code == 200, response.status_code
    return int(response.headers["upload-offset"])


def digest_header(algorithm: str, chunk: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, chunk).digest()).decode()}"


def assert_tus_error(response: httpx.Response, status: int) -> None:
    """A tus error: plain text, ``Tus-Resumable``, no traceback and no envelope."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["tus-resumable"] == "1.0.0"
    if response.request.method != "HEAD":
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text.strip()
        assert not response.text.startswith("{")
        assert_no_traceback(response.text)


def upload_file(client: httpx.Client, data: bytes, **meta: str) -> tuple[str, httpx.Response]:
    url = start(client, len(data), **meta)
    done = patch(client, url, data, 0)
    assert done.status_code == 204, done.text
    return url, done


# --- discovery, creation, HEAD, PATCH ------------------------------------------------------------


def test_options_discovery_needs_no_key(make_server):
    live = make_server(max_upload_bytes=5000)
    with live.client() as anonymous:
        for path in ("/v1/tus/", "/v1/tus"):
            response = anonymous.options(path)
            assert response.status_code == 204, response.text
            assert response.headers["tus-version"] == "1.0.0"
            extensions = response.headers["tus-extension"].split(",")
            assert extensions == ["creation", "creation-with-upload", "termination", "checksum", "expiration"]
            assert response.headers["tus-max-size"] == "5000"
            assert response.headers["tus-checksum-algorithm"].split(",") == ["sha1", "sha256", "md5"]
            assert "tus-resumable" not in response.headers


def test_create_patch_in_chunks_head_after_each_then_a_file(client):
    data = _pattern(300_000)
    response = create(
        client, len(data), **{"Upload-Metadata": metadata(filename="résumé.bin", filetype="a/b")}
    )
    assert response.status_code == 201, response.text
    location = response.headers["location"]
    assert location.startswith("/v1/tus/upload-")  # relative: right behind any proxy that keeps paths
    assert response.headers["tus-resumable"] == "1.0.0"
    assert response.headers["upload-offset"] == "0"
    expires = parsedate_to_datetime(response.headers["upload-expires"]).timestamp()
    assert 86_000 < expires - time.time() < 86_500
    assert "cairn-file-id" not in response.headers

    for start_at, end in ((0, 100_000), (100_000, 250_000)):
        appended = patch(client, location, data[start_at:end], start_at)
        assert appended.status_code == 204, appended.text
        assert appended.headers["upload-offset"] == str(end)
        assert appended.headers["tus-resumable"] == "1.0.0"
        assert parsedate_to_datetime(appended.headers["upload-expires"]).timestamp() == expires
        assert "cairn-file-id" not in appended.headers
        status = head(client, location)
        assert status.status_code == 200
        assert status.headers["upload-offset"] == str(end)
        assert status.headers["upload-length"] == str(len(data))
        assert status.headers["cache-control"] == "no-store"
        assert status.headers["tus-resumable"] == "1.0.0"
        assert status.headers["upload-metadata"] == metadata(filename="résumé.bin", filetype="a/b")
    assert client.get("/v1/files").json()["data"] == []  # nothing visible before completion

    last = patch(client, location, data[250_000:], 250_000)
    assert last.status_code == 204, last.text
    assert last.headers["upload-offset"] == str(len(data))
    file_id = last.headers["cairn-file-id"]
    assert last.headers["cairn-file-url"] == f"/v1/files/{file_id}/content"
    described = client.get(f"/v1/files/{file_id}").json()
    assert described["filename"] == "résumé.bin" and described["purpose"] == "user_data"
    assert described["bytes"] == len(data)
    assert [f["id"] for f in client.get("/v1/files").json()["data"]] == [file_id]
    download = client.get(last.headers["cairn-file-url"])
    assert download.content == data and download.headers["content-type"] == "a/b"
    # HEAD keeps answering until the upload expires, and names the file
    done = head(client, location)
    assert done.headers["upload-offset"] == str(len(data)) and done.headers["cairn-file-id"] == file_id


def test_collection_without_trailing_slash_and_type_from_filename(client):
    response = client.post(
        "/v1/tus", headers={**TUS, "Upload-Length": "2", "Upload-Metadata": metadata(name="n.txt")}
    )
    assert response.status_code == 201, response.text
    done = patch(client, response.headers["location"], b"hi", 0)
    file_id = done.headers["cairn-file-id"]
    assert client.get(f"/v1/files/{file_id}").json()["filename"] == "n.txt"
    assert client.get(f"/v1/files/{file_id}/content").headers["content-type"].startswith("text/plain")


def test_creation_with_upload(client):
    data = _pattern(50_000, seed=1)
    partial = create(client, len(data), data[:20_000], **{"Upload-Metadata": metadata(filename="p.bin")})
    assert partial.status_code == 201, partial.text
    assert partial.headers["upload-offset"] == "20000"
    assert "cairn-file-id" not in partial.headers
    rest = patch(client, partial.headers["location"], data[20_000:], 20_000)
    assert rest.status_code == 204
    assert client.get(rest.headers["cairn-file-url"]).content == data

    whole = create(client, len(data), data, **{"Upload-Checksum": digest_header("sha256", data)})
    assert whole.status_code == 201, whole.text
    assert whole.headers["upload-offset"] == str(len(data))
    assert client.get(whole.headers["cairn-file-url"]).content == data

    wrong = create(client, len(data), data, **{"Upload-Checksum": digest_header("sha1", b"other")})
    assert_tus_error(wrong, 460)
    too_long = create(client, 10, b"x" * 11)
    assert_tus_error(too_long, 413)
    wrong_type = create(client, 10, b"x" * 5, **{"Content-Type": "application/octet-stream"})
    assert_tus_error(wrong_type, 415)
    assert len(client.get("/v1/files").json()["data"]) == 2


def test_bucket_and_key_metadata_land_the_object_at_that_key(client):
    data = _pattern(70_000, seed=2)
    url, done = upload_file(client, data, bucket="models", key="llama/w.bin", filetype="application/x-w")
    obj = client.get("/v1/buckets/models/llama/w.bin").json()
    assert obj["bytes"] == len(data) and obj["mime_type"] == "application/x-w"
    assert obj["url"] == done.headers["cairn-file-url"]
    assert client.get(obj["url"]).content == data
    assert client.get("/v1/files").json()["data"] == []  # not a Files API file
    echoed = decode_metadata(head(client, url).headers["upload-metadata"])
    assert echoed == {"filetype": "application/x-w", "bucket": "models", "key": "llama/w.bin"}  # as sent


def test_purpose_metadata(client):
    _, done = upload_file(client, b"x", purpose="assistants")
    assert client.get(f"/v1/files/{done.headers['cairn-file-id']}").json()["purpose"] == "assistants"
    for meta in (
        {"purpose": "nonsense"},
        {"purpose": "assistants", "bucket": "b", "key": "k"},
        {"bucket": "b"},
        {"key": "k"},
        {"bucket": "a b", "key": "k"},
        {"bucket": "b", "key": "../k"},
        {"bucket": "b", "key": "/k"},
    ):
        assert_tus_error(create(client, 1, **{"Upload-Metadata": metadata(**meta)}), 400)


@pytest.mark.parametrize(
    "header",
    [
        "filename bm90IGJhc2U2NA",  # padding missing
        "filename %%%",
        "filename YQ==,filename Yg==",  # a key twice
        "filename YQ== Yg==",
        "filename YQ==,,type dGV4dC9wbGFpbg==",  # an empty pair
        "fil\te YQ==",
        "filename YQ==,",
        "filename " + base64.b64encode(b"\xff\xfe").decode(),  # not UTF-8
        "filename " + base64.b64encode(b"..").decode(),  # not a file name
    ],
)
def test_malformed_upload_metadata_is_400(client, header):
    assert_tus_error(create(client, 1, **{"Upload-Metadata": header}), 400)


def test_metadata_without_values_and_unknown_keys_are_accepted(client):
    response = create(
        client, 1, **{"Upload-Metadata": "is_confidential,relativePath bnVsbA==,filename YS50eHQ="}
    )
    assert response.status_code == 201, response.text
    echoed = head(client, response.headers["location"]).headers["upload-metadata"]
    assert echoed == "is_confidential,relativePath bnVsbA==,filename YS50eHQ="  # verbatim, as the spec says
    done = patch(client, response.headers["location"], b"a", 0)
    assert client.get(f"/v1/files/{done.headers['cairn-file-id']}").json()["filename"] == "a.txt"


def test_an_upload_of_another_kind_is_described_but_takes_no_patch(client):
    artifact = client.post(
        "/v1/artifacts", json={"key": "a/b.txt", "mime_type": "text/plain", "size": 3}
    ).json()
    described = head(client, f"/v1/tus/{artifact['id']}")
    assert decode_metadata(described.headers["upload-metadata"])["key"] == "a/b.txt"
    parts = client.post(
        "/v1/uploads", json={"bytes": 3, "filename": "p.txt", "mime_type": "text/plain", "purpose": "batch"}
    ).json()
    assert_tus_error(patch(client, f"/v1/tus/{parts['id']}", b"abc", 0), 400)
    assert_tus_error(create(client, 1, **{"Upload-Metadata": "filename " + "QUFB" * 1100}), 400)


# --- offsets, retries, checksums ------------------------------------------------------------------


def test_wrong_offset_is_409_and_writes_nothing(client):
    data = _pattern(30, seed=3)
    url = start(client, len(data))
    assert patch(client, url, data[:10], 0).status_code == 204
    for sent in (20, 0, 9, 11):
        conflict = patch(client, url, b"X" * 10, sent)
        assert_tus_error(conflict, 409)
        assert conflict.headers["upload-offset"] == "10"
        assert offset_of(client, url) == 10
    done = patch(client, url, data[10:], 10)
    assert client.get(done.headers["cairn-file-url"]).content == data


def test_retried_duplicate_chunk_is_409_then_resumes(client):
    data = _pattern(9000, seed=4)
    url = start(client, len(data))
    assert patch(client, url, data[:3000], 0).status_code == 204
    again = patch(client, url, data[:3000], 0)  # the client never saw the first answer
    assert_tus_error(again, 409)
    resume_at = int(again.headers["upload-offset"])
    assert resume_at == 3000
    assert patch(client, url, data[resume_at:], resume_at).status_code == 204
    # the final chunk retried after completion: still no second copy anywhere
    assert_tus_error(patch(client, url, data[resume_at:], resume_at), 409)
    file_id = head(client, url).headers["cairn-file-id"]
    assert client.get(f"/v1/files/{file_id}").json()["bytes"] == len(data)
    assert client.get(f"/v1/files/{file_id}/content").content == data


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5"])
def test_checksum_per_chunk(client, algorithm):
    data = _pattern(40_000, seed=5)
    url = start(client, len(data))
    for begin in range(0, len(data), 15_000):
        chunk = data[begin : begin + 15_000]
        response = patch(client, url, chunk, begin, **{"Upload-Checksum": digest_header(algorithm, chunk)})
        assert response.status_code == 204, response.text
    assert client.get(response.headers["cairn-file-url"]).content == data


def test_checksum_mismatch_is_460_and_keeps_nothing_of_the_chunk(client):
    data = _pattern(20_000, seed=6)
    url = start(client, len(data))
    assert patch(client, url, data[:5000], 0).status_code == 204
    corrupted = data[5000:12_000][:-1] + b"!"
    mismatch = patch(
        client, url, corrupted, 5000, **{"Upload-Checksum": digest_header("sha1", data[5000:12_000])}
    )
    assert_tus_error(mismatch, 460)
    assert offset_of(client, url) == 5000
    # a mismatching final chunk does not complete the upload either
    last = data[5000:]
    wrong = patch(client, url, last, 5000, **{"Upload-Checksum": digest_header("md5", last + b"x")})
    assert_tus_error(wrong, 460)
    assert offset_of(client, url) == 5000 and "cairn-file-id" not in head(client, url).headers
    done = patch(client, url, last, 5000, **{"Upload-Checksum": digest_header("md5", last)})
    assert done.status_code == 204
    assert client.get(done.headers["cairn-file-url"]).content == data


@pytest.mark.parametrize(
    "checksum",
    [
        "crc32 AAAAAA==",
        "sha512 " + base64.b64encode(hashlib.sha512(b"abc").digest()).decode(),
        "sha1",
        "sha1 ====",
        "sha1 not-base64!",
        "sha1 " + base64.b64encode(b"short").decode(),
        "sha256 " + base64.b64encode(hashlib.sha1(b"abc").digest()).decode(),
    ],
)
def test_unsupported_or_malformed_checksum_is_400(client, checksum):
    url = start(client, 3)
    assert_tus_error(patch(client, url, b"abc", 0, **{"Upload-Checksum": checksum}), 400)
    assert offset_of(client, url) == 0


@pytest.mark.parametrize("content_type", ["application/octet-stream", "text/plain", None])
def test_patch_with_other_content_type_is_415(client, content_type):
    url = start(client, 3)
    headers = {**TUS, "Upload-Offset": "0"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    assert_tus_error(client.patch(url, content=b"abc", headers=headers), 415)
    assert offset_of(client, url) == 0
    # parameters and case do not matter
    ok = patch(client, url, b"abc", 0, **{"Content-Type": "Application/Offset+Octet-Stream; x=1"})
    assert ok.status_code == 204


def test_patch_without_or_with_bad_upload_offset_is_400(client):
    url = start(client, 3)
    assert_tus_error(client.patch(url, content=b"abc", headers=OFFSET_STREAM), 400)
    for bad in ("-1", "x", "1.0", ""):
        assert_tus_error(
            client.patch(url, content=b"abc", headers={**OFFSET_STREAM, "Upload-Offset": bad}), 400
        )
    assert offset_of(client, url) == 0


def test_tus_resumable_missing_or_unsupported_is_412(server, client):
    url = start(client, 3)
    for version in (None, "0.2.2", "1.0", "2.0.0"):
        headers = {} if version is None else {"Tus-Resumable": version}
        requests = [
            client.post("/v1/tus/", headers={**headers, "Upload-Length": "3"}),
            client.head(url, headers=headers),
            client.patch(
                url,
                content=b"abc",
                headers={**headers, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"},
            ),
            client.delete(url, headers=headers),
        ]
        for response in requests:
            assert_tus_error(response, 412)
            assert response.headers["tus-version"] == "1.0.0"
    assert offset_of(client, url) == 0
    assert client.get("/v1/files").json()["data"] == []
    with server.client() as anonymous:  # the version is checked before the key
        assert_tus_error(anonymous.post("/v1/tus/", headers={"Upload-Length": "3"}), 412)


def test_size_zero_completes_at_creation(client):
    response = create(client, 0, **{"Upload-Metadata": metadata(filename="empty.txt")})
    assert response.status_code == 201, response.text
    assert response.headers["upload-offset"] == "0"
    file_id = response.headers["cairn-file-id"]
    assert client.get(f"/v1/files/{file_id}").json()["bytes"] == 0
    assert client.get(response.headers["cairn-file-url"]).content == b""
    status = head(client, response.headers["location"])
    assert status.headers["upload-offset"] == "0" and status.headers["upload-length"] == "0"


def test_over_size_and_missing_length(make_server):
    live = make_server(max_upload_bytes=1000)
    with live.client(live.new_tenant()) as http:
        assert_tus_error(create(http, 1001), 413)
        assert_tus_error(http.post("/v1/tus/", headers=TUS), 400)
        assert_tus_error(create(http, 10, **{"Upload-Length": "ten"}), 400)
        assert_tus_error(http.post("/v1/tus/", headers={**TUS, "Upload-Defer-Length": "1"}), 400)
        assert_tus_error(create(http, 10, **{"Upload-Concat": "partial"}), 400)
        url = start(http, 1000)
        assert patch(http, url, b"a" * 600, 0).status_code == 204
        assert_tus_error(patch(http, url, b"b" * 401, 600), 413)  # longer than what remains

        def streamed():  # no Content-Length: the overrun shows only as the bytes arrive
            yield b"c" * 300
            yield b"c" * 300

        chunked = http.patch(url, content=streamed(), headers={**OFFSET_STREAM, "Upload-Offset": "600"})
        assert_tus_error(chunked, 413)
        assert offset_of(http, url) == 600
        done = patch(http, url, b"d" * 400, 600)
        assert http.get(done.headers["cairn-file-url"]).content == b"a" * 600 + b"d" * 400


# --- lifecycle ------------------------------------------------------------------------------------


def test_termination_then_404(server, client):
    url = start(client, 10)
    assert patch(client, url, b"01234", 0).status_code == 204
    terminated = client.delete(url, headers=TUS)
    assert terminated.status_code == 204
    assert terminated.headers["tus-resumable"] == "1.0.0"
    assert_tus_error(head(client, url), 404)
    assert "upload-offset" not in head(client, url).headers
    assert_tus_error(patch(client, url, b"56789", 5), 404)
    assert_tus_error(client.delete(url, headers=TUS), 404)
    assert wait_until(lambda: server.staged_sessions() == []), "the staged bytes were kept"


def test_termination_of_a_completed_upload_keeps_the_file(client):
    url, done = upload_file(client, b"kept")
    assert client.delete(url, headers=TUS).status_code == 204
    assert_tus_error(head(client, url), 404)
    assert client.get(done.headers["cairn-file-url"]).content == b"kept"


def test_expired_upload_is_404(server, client):
    url = start(client, 10)
    assert patch(client, url, b"01234", 0).status_code == 204
    asyncio.run(backdate_session(server.settings.storage.resolved_database_url, url.rsplit("/", 1)[1]))
    assert_tus_error(head(client, url), 404)
    assert_tus_error(patch(client, url, b"56789", 5), 404)
    assert_tus_error(client.delete(url, headers=TUS), 404)


def test_unknown_uploads_and_methods(client):
    for upload_id in ("upload-0123", "file-abc", "x" * 300, "%00"):
        url = f"/v1/tus/{upload_id}"
        assert_tus_error(head(client, url), 404)
        assert_tus_error(patch(client, url, b"x", 0), 404)
        assert_tus_error(client.delete(url, headers=TUS), 404)
    url = start(client, 1)
    assert_tus_error(client.get(url, headers=TUS), 405)
    assert_tus_error(client.put(url, headers=TUS, content=b"x"), 405)


def test_method_override_for_clients_without_patch_or_delete(client):
    url = start(client, 4)
    override = {**OFFSET_STREAM, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"}
    appended = client.post(url, content=b"ab", headers=override)
    assert appended.status_code == 204 and appended.headers["upload-offset"] == "2"
    assert_tus_error(client.post(url, content=b"ab", headers=override), 409)
    assert_tus_error(client.post(url, content=b"cd", headers={**OFFSET_STREAM, "Upload-Offset": "2"}), 405)
    assert client.post(url, headers={**TUS, "X-HTTP-Method-Override": "DELETE"}).status_code == 204
    assert_tus_error(head(client, url), 404)


# --- broken connections and races -----------------------------------------------------------------


def test_disconnect_mid_patch_keeps_what_arrived_then_resumes(server, tenant, client):
    data = _pattern(2 * 1024 * 1024, seed=8)
    url = start(client, len(data))
    sent = 768 * 1024
    conn = RawConnection.open(server.url)
    conn.request(
        "PATCH",
        url,
        headers=[auth(tenant.key), *OFFSET_STREAM.items(), ("Upload-Offset", "0")],
        body=data[:sent],
        content_length=len(data),
    )
    time.sleep(0.2)
    conn.close()
    assert wait_until(lambda: offset_of(client, url) > 0, timeout=10), "no arrived bytes were kept"
    seen = [offset_of(client, url)]
    assert wait_until(lambda: seen.append(offset_of(client, url)) or seen[-1] == seen[-2], timeout=10)
    offset = seen[-1]
    assert 0 < offset <= sent
    done = patch(client, url, data[offset:], offset)
    assert done.status_code == 204, done.text
    assert client.get(done.headers["cairn-file-url"]).content == data


def test_disconnect_during_creation_with_upload_leaves_nothing(server, tenant):
    """The client never got the upload's URL, so it cannot resume: the upload and its bytes go."""
    size = 4 * 1024 * 1024
    conn = RawConnection.open(server.url)
    conn.request(
        "POST",
        "/v1/tus/",
        headers=[auth(tenant.key), *OFFSET_STREAM.items(), ("Upload-Length", str(size))],
        body=_pattern(1536 * 1024, seed=9),
        content_length=size,
    )
    if server.settings.storage.blob_store:  # S3 staging is written when an append ends, not as bytes arrive
        time.sleep(1)
    else:
        assert wait_until(lambda: server.staged_sessions() != [], timeout=10)
    conn.close()
    assert wait_until(lambda: server.staged_sessions() == [], timeout=10), server.staged_sessions()


def _slow(chunk: bytes, pieces: int = 5, pause: float = 0.04):
    step = len(chunk) // pieces + 1
    for begin in range(0, len(chunk), step):
        yield chunk[begin : begin + step]
        time.sleep(pause)


def test_two_concurrent_patches_stay_byte_exact(server, tenant, client):
    """Both send the first half at offset 0. One gets in; the other answers 409 (wrong offset, or
    stopped by the newer request with the offset it reached). Resuming from HEAD gives the exact file."""
    data = _pattern(200_000, seed=7)
    url = start(client, len(data))
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def send(i: int) -> None:
        with server.client(tenant) as http:
            barrier.wait()
            headers = {**OFFSET_STREAM, "Upload-Offset": "0"}
            try:
                results[i] = http.patch(url, content=_slow(data[:100_000]), headers=headers)
            except Exception as exc:  # surfaced below
                results[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for result in results:
        assert isinstance(result, httpx.Response), result
        assert result.status_code in (204, 409), result.text
        assert 0 <= int(result.headers["upload-offset"]) <= 100_000
    assert any(r.status_code == 409 for r in results)
    offset = offset_of(client, url)
    assert offset == max(int(r.headers["upload-offset"]) for r in results)
    done = patch(client, url, data[offset:], offset)
    assert done.status_code == 204, done.text
    assert client.get(done.headers["cairn-file-url"]).content == data


# --- tenancy and authentication -------------------------------------------------------------------


def test_another_tenant_gets_404_and_changes_nothing(server, client):
    url = start(client, 6)
    assert patch(client, url, b"abc", 0).status_code == 204
    with server.client(server.new_tenant()) as other:
        status = head(other, url)
        assert_tus_error(status, 404)
        assert "upload-offset" not in status.headers
        assert_tus_error(patch(other, url, b"def", 3), 404)
        assert_tus_error(other.delete(url, headers=TUS), 404)
    assert offset_of(client, url) == 3
    done = patch(client, url, b"def", 3)
    assert client.get(done.headers["cairn-file-url"]).content == b"abcdef"


def test_without_a_key_is_401(server, client):
    url = start(client, 3)
    with server.client() as anonymous:
        responses = [
            anonymous.post("/v1/tus/", headers={**TUS, "Upload-Length": "3"}),
            head(anonymous, url),
            patch(anonymous, url, b"abc", 0),
            anonymous.delete(url, headers=TUS),
        ]
        bad_key = anonymous.delete(url, headers={**TUS, "Authorization": "Bearer sk-not-a-key"})
    for response in [*responses, bad_key]:
        assert_tus_error(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
    assert offset_of(client, url) == 0


# --- CORS -----------------------------------------------------------------------------------------

ORIGIN = "https://app.example"


def test_cors_preflight_without_a_key_and_exposed_headers(make_server):
    live = make_server(cors_origins=[ORIGIN])
    tenant = live.new_tenant()
    with live.client() as browser:
        preflight = browser.options(
            "/v1/tus/",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "authorization,tus-resumable,upload-offset,upload-checksum,"
                "upload-length,upload-metadata,content-type,x-http-method-override",
            },
        )
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert "PATCH" in preflight.headers["access-control-allow-methods"]
        allowed = preflight.headers["access-control-allow-headers"].lower()
        for name in ("authorization", "tus-resumable", "upload-offset", "upload-metadata", "content-type"):
            assert name in allowed
        created = browser.post(
            "/v1/tus/",
            headers={**TUS, "Upload-Length": "1", "Origin": ORIGIN, "Authorization": f"Bearer {tenant.key}"},
        )
        assert created.status_code == 201
        assert created.headers["access-control-allow-origin"] == ORIGIN
        exposed = {h.strip().lower() for h in created.headers["access-control-expose-headers"].split(",")}
        assert {
            "location",
            "upload-offset",
            "upload-length",
            "upload-metadata",
            "upload-expires",
            "tus-resumable",
            "tus-version",
            "tus-extension",
            "tus-max-size",
            "cairn-file-id",
            "cairn-file-url",
            "etag",
            "content-range",
            "content-disposition",
            "retry-after",
            "x-ratelimit-remaining-uploads",
            "x-ratelimit-reset-retrievals",
        } <= exposed
        elsewhere = browser.post(
            "/v1/tus/", headers={**TUS, "Upload-Length": "1", "Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in elsewhere.headers


def test_no_cors_by_default(server):
    with server.client() as browser:
        preflight = browser.options(
            "/v1/tus/", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in preflight.headers


# --- URLs behind proxies --------------------------------------------------------------------------

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "files.example.com"}


def _location(live, **headers: str) -> tuple[str, str]:
    """The Location of a new upload and the file URL of a completed one, with ``headers`` sent."""
    with live.client(live.new_tenant()) as http:
        created = create(http, 1, **headers)
        assert created.status_code == 201, created.text
        done = create(http, 0, **headers)
        return created.headers["location"], done.headers["cairn-file-url"]


def test_location_uses_the_public_url(make_server):
    live = make_server(public_url="https://files.example.com/cairn/")
    location, file_url = _location(live, **{**FORWARDED, "X-Forwarded-Host": "evil.example"})
    assert location.startswith("https://files.example.com/cairn/v1/tus/upload-")
    assert file_url.startswith("https://files.example.com/cairn/v1/files/file-")


@pytest.mark.parametrize(
    ("headers", "base"),
    [
        (FORWARDED, "https://files.example.com"),
        (
            {"Forwarded": 'for=192.0.2.1;proto=https;host="files.example.com:8443", for=10.0.0.2;proto=http'},
            "https://files.example.com:8443",
        ),
        ({"X-Forwarded-Proto": "https"}, "https://127.0.0.1:{port}"),  # the Host header the proxy passed
        (
            {"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "a.example:444, b"},
            "https://a.example:444",
        ),
        (
            {"X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "files.example.com"},
            "http://files.example.com",
        ),
        ({"X-Forwarded-Host": "evil.example/path"}, ""),
        ({"X-Forwarded-Host": "evil.example\\@x"}, ""),
        ({}, ""),
    ],
)
def test_location_follows_a_trusted_proxy(make_server, headers, base):
    live = make_server(trusted_proxies=["127.0.0.0/8"])
    location, file_url = _location(live, **headers)
    expected = base.format(port=live.url.rsplit(":", 1)[1])
    assert location.startswith(f"{expected}/v1/tus/upload-"), location
    assert file_url.startswith(f"{expected}/v1/files/file-"), file_url


@pytest.mark.parametrize("trusted", [[], ["10.0.0.0/8"]])
def test_location_ignores_forwarded_headers_from_untrusted_peers(make_server, trusted):
    live = make_server(trusted_proxies=trusted)
    location, file_url = _location(live, **FORWARDED, Forwarded="proto=https;host=evil.example")
    assert location.startswith("/v1/tus/upload-")
    assert file_url.startswith("/v1/files/file-")


# --- raw bytes with curl --------------------------------------------------------------------------


def test_curl_patch_with_raw_bytes(server, tenant, client, tmp_path):
    data = bytes(range(256)) * 4000 + b"\r\n\x00end"
    source = tmp_path / "raw.bin"
    source.write_bytes(data)
    url = start(client, len(data), filename="raw.bin")
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-X",
            "PATCH",
            "--data-binary",
            f"@{source}",
            "-H",
            f"Authorization: Bearer {tenant.key}",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Upload-Offset: 0",
            "-H",
            "Content-Type: application/offset+octet-stream",
            "-H",
            f"Upload-Checksum: {digest_header('sha256', data)}",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-w",
            "status=%{http_code}",
            f"{server.url}{url}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    output = result.stdout.lower()
    assert output.endswith("status=204"), result.stdout
    assert f"upload-offset: {len(data)}" in output
    file_id = head(client, url).headers["cairn-file-id"]
    assert client.get(f"/v1/files/{file_id}").json()["filename"] == "raw.bin"
    content = client.get(f"/v1/files/{file_id}/content").content
    assert sha256(content) == sha256(data)


# --- OpenAPI --------------------------------------------------------------------------------------


def test_openapi_documents_tus_errors_as_plain_text(tmp_path):
    schema = create_app(Settings(data_dir=tmp_path)).openapi()
    for path in ("/v1/tus/", "/v1/tus/{upload_id}"):
        for method, operation in schema["paths"][path].items():
            if method == "options":
                assert set(operation["responses"]) == {"204"}
                continue
            for status in ("400", "401", "412"):
                assert set(operation["responses"][status]["content"]) == {"text/plain"}, (path, method)
