"""The Artifacts face: resumable upload sessions (``/v1/artifacts/sessions/{id}``) that complete into
keyed objects of the tenant's ``artifacts`` bucket, their downloads through ``/v1/files/{id}/content``,
listing by key with prefix/delimiter, per-key bulk delete, key validation and tenant isolation."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from typing import Any
from urllib.parse import quote

from _support import (
    RawConnection,
    assert_no_traceback,
    assert_openai_error,
    auth,
    backdate_session,
    blob_files,
    sha256,
    staging_files,
    wait_until,
)

SESSION_FIELDS = {"id", "uri", "offset", "size", "key", "mime_type", "expires_at"}
ARTIFACT_FIELDS = {"id", "key", "mime_type", "uri", "size", "created_at", "sha256"}

BAD_KEYS = [
    "",
    ".",
    "..",
    "../a",
    "a/..",
    "a/../b",
    "./a",
    "a/.",
    "a/./b",
    "/a",
    "a/",
    "/",
    "a//b",
    "sessions",
    "sessions/x",
    "bulk",
    "bulk/x",
    "a b",
    " a",
    "a ",
    "été",
    "日本/語",
    "a\\b",
    "a%20b",
    "%2e%2e",
    "a\x00b",
    "a\tb",
    "a\nb",
    "a?b",
    "a#b",
    "a*b",
    "a:b",
    "a+b",
    "a~b",
    "a" * 1025,
    "a/" * 512 + "b",  # 1,025 characters made of fine segments
]


def _pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes that differ from offset to offset (a misplaced chunk cannot go unnoticed)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(b"%d:%d" % (seed, counter)).digest()
        counter += 1
    return bytes(out[:size])


def _create(
    client,
    key: str,
    size: int,
    *,
    mime_type: str = "application/octet-stream",
    sha: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"key": key, "mime_type": mime_type, "size": size}
    if sha is not None:
        body["sha256"] = sha
    response = client.post("/v1/artifacts", json=body)
    assert response.status_code == 200, response.text
    session = response.json()
    assert set(session) == SESSION_FIELDS, session
    return session  # type: ignore[no-any-return]


def _append(client, session: dict[str, Any], chunk: bytes, *, offset: int | None = None, **headers: str):
    if offset is not None:
        headers["Upload-Offset"] = str(offset)
    return client.post(session["uri"], content=chunk, headers=headers)


def _offset(client, session: dict[str, Any]) -> int:
    response = client.get(session["uri"])
    assert response.status_code == 200, response.text
    return response.json()["offset"]  # type: ignore[no-any-return]


def _put(client, key: str, data: bytes, *, mime_type: str = "application/octet-stream") -> dict[str, Any]:
    """Create a session and send ``data`` in one chunk; returns the artifact object."""
    session = _create(client, key, len(data), mime_type=mime_type)
    if not data:
        return _get(client, key)
    response = _append(client, session, data)
    assert response.status_code == 200, response.text
    artifact = response.json()
    assert artifact is not None
    return artifact  # type: ignore[no-any-return]


def _get(client, key: str) -> dict[str, Any]:
    response = client.get(f"/v1/artifacts/{quote(key, safe='/')}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _content(client, artifact: dict[str, Any]) -> bytes:
    response = client.get(artifact["uri"])
    assert response.status_code == 200, response.text
    return response.content


def _assert_artifact(artifact: dict[str, Any], key: str, data: bytes, mime_type: str) -> None:
    assert set(artifact) == ARTIFACT_FIELDS, artifact
    assert artifact["id"].startswith("file-")
    assert artifact["key"] == key
    assert artifact["mime_type"] == mime_type
    assert artifact["uri"] == f"/v1/files/{artifact['id']}/content"
    assert artifact["size"] == len(data)
    assert artifact["sha256"] == sha256(data)
    assert isinstance(artifact["created_at"], int)
    assert abs(artifact["created_at"] - time.time()) < 600


def _keys(listing: dict[str, Any]) -> list[str]:
    return [a["key"] for a in listing["data"]]


def _raw_status(server, key: str, method: str, target: str) -> tuple[int, bytes]:
    with RawConnection.open(server.url) as conn:
        conn.request(method, target, headers=[auth(key)])
        response = conn.response()
    return response.status, response.body


def _settle() -> None:
    """Let the server thread finish logging a crash before this test can fail: on CPython 3.11 a
    traceback formatted there while pytest formats one here can break pytest itself
    ("SystemError: AST constructor recursion depth mismatch")."""
    time.sleep(0.3)


# --- sessions: the happy path ---------------------------------------------------------------------


def test_upload_three_chunks_completes_and_downloads_byte_exact(client):
    data = _pattern(300_000)
    chunks = [data[:100_000], data[100_000:250_000], data[250_000:]]
    session = _create(client, "reports/2024/q1.bin", len(data), mime_type="application/x-thing")
    assert session["id"].startswith("upload-")
    assert session["uri"] == f"/v1/artifacts/sessions/{session['id']}"
    assert session["offset"] == 0
    assert session["size"] == len(data)
    assert session["key"] == "reports/2024/q1.bin"
    assert session["mime_type"] == "application/x-thing"
    assert isinstance(session["expires_at"], int) and session["expires_at"] > time.time()

    # any Content-Type is taken as raw bytes, even ones that look like forms or JSON
    content_types = ["application/json", "multipart/form-data; boundary=x", None]
    sent = 0
    for chunk, content_type in zip(chunks[:2], content_types, strict=False):
        response = _append(client, session, chunk, **({"Content-Type": content_type} if content_type else {}))
        sent += len(chunk)
        assert response.status_code == 200, response.text
        assert response.json() is None
        assert response.headers["upload-offset"] == str(sent)
        status = client.get(session["uri"])
        assert status.status_code == 200
        assert status.headers["cache-control"] == "no-store"
        assert status.json() == {**session, "offset": sent}
        # not visible as an artifact until complete
        assert_openai_error(client.get("/v1/artifacts/reports/2024/q1.bin"), 404)

    last = _append(client, session, chunks[2])
    assert last.status_code == 200, last.text
    assert last.headers["upload-offset"] == str(len(data))
    artifact = last.json()
    _assert_artifact(artifact, "reports/2024/q1.bin", data, "application/x-thing")

    assert _content(client, artifact) == data
    ranged = client.get(artifact["uri"], headers={"Range": "bytes=99990-100009"})
    assert ranged.status_code == 206
    assert ranged.content == data[99_990:100_010]
    assert _get(client, "reports/2024/q1.bin") == artifact
    # the files face lists its own bucket only
    assert client.get("/v1/files").json()["data"] == []


def test_create_size_zero_completes_at_once(client):
    session = _create(client, "empty/marker", 0, mime_type="text/plain")
    assert session["offset"] == 0
    assert session["size"] == 0
    artifact = _get(client, "empty/marker")
    _assert_artifact(artifact, "empty/marker", b"", "text/plain")
    assert _content(client, artifact) == b""
    assert _keys(client.get("/v1/artifacts").json()) == ["empty/marker"]


def test_append_with_upload_offset_header_places_bytes(client):
    data = _pattern(5000, seed=1)
    session = _create(client, "with-offset", len(data))
    for start in range(0, len(data), 2000):
        response = _append(client, session, data[start : start + 2000], offset=start)
        assert response.status_code == 200, response.text
        assert response.headers["upload-offset"] == str(min(start + 2000, len(data)))
    artifact = response.json()
    _assert_artifact(artifact, "with-offset", data, "application/octet-stream")
    assert _content(client, artifact) == data


def test_append_with_content_range_header_places_bytes(client):
    data = _pattern(5000, seed=2)
    session = _create(client, "with-range", len(data))
    for start in range(0, len(data), 2000):
        chunk = data[start : start + 2000]
        header = f"bytes {start}-{start + len(chunk) - 1}/{len(data)}"
        response = _append(client, session, chunk, **{"Content-Range": header})
        assert response.status_code == 200, response.text
        assert response.headers["upload-offset"] == str(start + len(chunk))
    artifact = response.json()
    _assert_artifact(artifact, "with-range", data, "application/octet-stream")
    assert _content(client, artifact) == data


# --- sessions: offsets, retries, limits ---------------------------------------------------------


def test_append_wrong_offset_is_409_and_writes_nothing(client):
    data = _pattern(30, seed=3)
    session = _create(client, "offsets", len(data))
    assert _append(client, session, data[:10]).status_code == 200
    attempts = [
        {"Upload-Offset": "20"},  # ahead
        {"Upload-Offset": "0"},  # behind
        {"Upload-Offset": "9"},
        {"Content-Range": "bytes 20-29/30"},
        {"Content-Range": "bytes 0-9/30"},
    ]
    for headers in attempts:
        response = client.post(session["uri"], content=b"X" * 10, headers=headers)
        assert_openai_error(response, 409, code="offset_mismatch")
        assert response.headers["upload-offset"] == "10", headers
        assert response.headers["x-should-retry"] == "false"
        assert _offset(client, session) == 10
    done = _append(client, session, data[10:], offset=10)
    assert done.status_code == 200, done.text
    assert _content(client, done.json()) == data


def test_append_retried_duplicate_chunk_is_409_then_resumes(client):
    data = _pattern(9000, seed=4)
    session = _create(client, "retried", len(data))
    first = _append(client, session, data[:3000], offset=0)
    assert first.status_code == 200
    # the client never saw that answer and sends the same chunk again
    again = _append(client, session, data[:3000], offset=0)
    assert_openai_error(again, 409, code="offset_mismatch")
    resume_at = int(again.headers["upload-offset"])
    assert resume_at == 3000
    second = _append(client, session, data[resume_at:6000], offset=resume_at)
    assert second.status_code == 200 and second.json() is None
    # and the same again for the middle chunk, this time with Content-Range
    dup = _append(client, session, data[3000:6000], **{"Content-Range": "bytes 3000-5999/9000"})
    assert_openai_error(dup, 409, code="offset_mismatch")
    assert dup.headers["upload-offset"] == "6000"
    final = _append(client, session, data[6000:], offset=6000)
    assert final.status_code == 200, final.text
    artifact = final.json()
    assert artifact["sha256"] == sha256(data)
    assert _content(client, artifact) == data


def test_append_malformed_offset_headers_are_refused_and_write_nothing(client):
    session = _create(client, "malformed-offsets", 10)
    for headers in (
        {"Upload-Offset": "abc"},
        {"Upload-Offset": "-1"},
        {"Upload-Offset": "1.5"},
        {"Content-Range": "bytes x-y/10"},
        {"Content-Range": "items 0-4/10"},
        {"Content-Range": "bytes 0-4/99"},
    ):
        response = client.post(session["uri"], content=b"01234", headers=headers)
        assert response.status_code in (400, 409, 416), (headers, response.status_code, response.text)
        assert_no_traceback(response.text)
        assert set(response.json()) == {"error"}
        assert _offset(client, session) == 0
    assert _append(client, session, b"0123456789").status_code == 200


def test_append_non_ascii_digit_offset_is_400(server, tenant, client):
    session = _create(client, "superscript-offset", 10)
    for value in (b"\xb2", b"\xb9", b"0\xb3"):
        with RawConnection.open(server.url) as conn:  # httpx would not send these bytes
            conn.send(
                b"POST "
                + session["uri"].encode()
                + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + tenant.key.encode()
                + b"\r\nUpload-Offset: "
                + value
                + b"\r\nContent-Length: 1\r\n\r\nx"
            )
            response = conn.response()
        _settle()
        assert response.status == 400, (value, response.status, response.body)
        assert_no_traceback(response.body.decode("utf-8", "replace"))
    assert _offset(client, session) == 0


def test_append_over_size_by_content_length_is_413_and_offset_unchanged(client):
    session = _create(client, "too-much", 10)
    assert_openai_error(_append(client, session, b"x" * 11), 413)
    assert _offset(client, session) == 0
    assert _append(client, session, b"01234").status_code == 200
    assert_openai_error(_append(client, session, b"x" * 6), 413)
    assert_openai_error(_append(client, session, b"x" * 6, offset=5), 413)
    assert _offset(client, session) == 5
    done = _append(client, session, b"56789")
    assert done.status_code == 200, done.text
    assert _content(client, done.json()) == b"0123456789"


def test_append_over_size_refused_early_keeps_connection_usable(server, tenant, client):
    session = _create(client, "too-much-raw", 10)
    key = auth(tenant.key)
    with RawConnection.open(server.url) as conn:
        conn.request("POST", session["uri"], headers=[key], body=b"x" * 200_000)
        refused = conn.response()
        assert refused.status == 413, refused.body
        assert_no_traceback(refused.body.decode("utf-8", "replace"))
        if (refused.header("connection") or "").lower() != "close":
            conn.request("GET", session["uri"], headers=[key])
            follow_up = conn.response()
            assert follow_up.status == 200
            assert json.loads(follow_up.body)["offset"] == 0
    assert _offset(client, session) == 0


def test_append_over_size_by_chunked_body_is_413_and_offset_unchanged(client):
    session = _create(client, "too-much-streamed", 10)

    def body():  # no Content-Length: httpx sends Transfer-Encoding: chunked
        yield b"0123"
        yield b"4567"
        yield b"89AB"

    response = client.post(session["uri"], content=body())
    assert_openai_error(response, 413)
    assert _offset(client, session) == 0

    def fits():
        yield b"01234"
        yield b"56789"

    done = client.post(session["uri"], content=fits())
    assert done.status_code == 200, done.text
    assert done.headers["upload-offset"] == "10"
    assert _content(client, done.json()) == b"0123456789"


def test_create_over_server_max_is_413(make_server):
    live = make_server(max_upload_bytes=1000)
    tenant = live.new_tenant()
    with live.client(tenant) as http:
        response = http.post("/v1/artifacts", json={"key": "big", "mime_type": "text/plain", "size": 1001})
        assert_openai_error(response, 413, code="too_large")
        session = _create(http, "at-cap", 1000)
        done = _append(http, session, b"c" * 1000)
        assert done.status_code == 200, done.text
        assert _keys(http.get("/v1/artifacts").json()) == ["at-cap"]


def test_sha256_match_completes(client):
    data = _pattern(4096, seed=5)
    session = _create(client, "checked", len(data), sha=sha256(data))
    assert _append(client, session, data[:1000]).status_code == 200
    done = _append(client, session, data[1000:])
    assert done.status_code == 200, done.text
    assert done.json()["sha256"] == sha256(data)
    assert _content(client, done.json()) == data


def test_sha256_mismatch_is_400_keeps_bytes_until_session_delete(server, client):
    data = _pattern(4096, seed=6)
    session = _create(client, "checked", len(data), sha=sha256(b"something else"))
    assert _append(client, session, data[:1000]).status_code == 200
    response = _append(client, session, data[1000:])
    assert_openai_error(response, 400, code="checksum_mismatch")
    assert_openai_error(client.get("/v1/artifacts/checked"), 404)
    assert _offset(client, session) == len(data)
    assert client.get("/v1/artifacts").json()["data"] == []

    deleted = client.delete(session["uri"])
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": session["id"], "deleted": True}
    assert_openai_error(client.get(session["uri"]), 404)
    assert wait_until(lambda: staging_files(server.settings.storage.data_dir) == []), (
        "the staged bytes were kept"
    )


def test_sha256_mismatch_does_not_replace_existing_key(client):
    old = _put(client, "stable", b"old bytes")
    session = _create(client, "stable", 9, sha=sha256(b"new bytes"))
    assert_openai_error(_append(client, session, b"NEW BYTES"), 400, code="checksum_mismatch")
    assert _get(client, "stable") == old
    assert _content(client, old) == b"old bytes"


# --- sessions: lifecycle ------------------------------------------------------------------------


def test_session_delete_then_session_is_404(client):
    session = _create(client, "dropped", 10)
    assert _append(client, session, b"01234").status_code == 200
    deleted = client.delete(session["uri"])
    assert deleted.status_code == 200
    assert deleted.json() == {"id": session["id"], "deleted": True}
    assert_openai_error(client.get(session["uri"]), 404)
    assert_openai_error(_append(client, session, b"56789"), 404)
    assert_openai_error(client.delete(session["uri"]), 404)
    assert_openai_error(client.get("/v1/artifacts/dropped"), 404)


def test_expired_session_is_404(server, client):
    session = _create(client, "late", 10)
    assert _append(client, session, b"01234").status_code == 200
    asyncio.run(backdate_session(server.settings.storage.resolved_database_url, session["id"]))
    assert_openai_error(client.get(session["uri"]), 404)
    assert_openai_error(_append(client, session, b"56789"), 404)
    assert_openai_error(_append(client, session, b"56789", offset=5), 404)
    assert_openai_error(client.delete(session["uri"]), 404)
    assert_openai_error(client.get("/v1/artifacts/late"), 404)


def test_session_delete_during_append_never_500(server, tenant, client):
    data = _pattern(50_000, seed=11)
    session = _create(client, "cancelled-midway", len(data))
    results: list[Any] = [None]

    def appender() -> None:
        with server.client(tenant) as http:
            results[0] = http.post(session["uri"], content=_slow(data, pieces=5, pause=0.1))

    thread = threading.Thread(target=appender)
    thread.start()
    time.sleep(0.25)
    cancelled = client.delete(session["uri"])
    thread.join(timeout=30)
    _settle()
    appended = results[0]
    assert cancelled.status_code in (200, 404, 409), cancelled.text
    assert appended.status_code < 500, appended.text
    assert_no_traceback(appended.text)
    if cancelled.status_code == 200:
        assert_openai_error(client.get(session["uri"]), 404)
    artifact = client.get("/v1/artifacts/cancelled-midway")
    if artifact.status_code == 200:  # the append won the race: the object is whole
        assert _content(client, artifact.json()) == data
    else:
        assert_openai_error(artifact, 404)
    assert wait_until(lambda: staging_files(server.settings.storage.data_dir) == [])


def test_unknown_session_is_404(client):
    for session_id in ("upload-DoesNotExist123", "file-abc", "x" * 300, "%00", "%C3%A9"):
        uri = f"/v1/artifacts/sessions/{session_id}"
        assert_openai_error(client.get(uri), 404)
        assert_openai_error(client.post(uri, content=b"x"), 404)
        assert_openai_error(client.delete(uri), 404)
    # an encoded slash makes it no session id at all: the key routes refuse it
    uri = "/v1/artifacts/sessions/..%2F..%2Fx"
    for response in (client.get(uri), client.post(uri, content=b"x"), client.delete(uri)):
        assert response.status_code in (400, 404, 405), response.text
        assert_no_traceback(response.text)


def test_append_to_completed_session_is_409(client):
    session = _create(client, "finished", 4)
    assert _append(client, session, b"done").status_code == 200
    response = _append(client, session, b"more")
    assert_openai_error(response, 409, code="upload_completed")
    assert _content(client, _get(client, "finished")) == b"done"


def test_create_bad_fields_are_400(client):
    good = {"key": "k", "mime_type": "text/plain", "size": 1}
    cases = [
        ({**good, "mime_type": ""}, "mime_type"),
        ({**good, "mime_type": "plain"}, "mime_type"),
        ({**good, "mime_type": "text/plain\r\nX-Evil: 1"}, "mime_type"),
        ({**good, "mime_type": 5}, "mime_type"),
        ({k: v for k, v in good.items() if k != "mime_type"}, "mime_type"),
        ({**good, "size": -1}, "size"),
        ({**good, "size": "10"}, "size"),
        ({**good, "size": 1.5}, "size"),
        ({k: v for k, v in good.items() if k != "size"}, "size"),
        ({**good, "sha256": "xyz"}, "sha256"),
        ({**good, "sha256": "0" * 63}, "sha256"),
        ({k: v for k, v in good.items() if k != "key"}, "key"),
        ({**good, "key": None}, "key"),
        ({**good, "key": 7}, "key"),
    ]
    for body, param in cases:
        response = client.post("/v1/artifacts", json=body)
        assert_openai_error(response, 400, code="invalid_request", param=param)
    for raw in (b"not json", b"[]", b"", b'{"key": "k"'):
        response = client.post("/v1/artifacts", content=raw, headers={"Content-Type": "application/json"})
        assert_openai_error(response, 400, code="invalid_request")
    assert client.get("/v1/artifacts").json()["data"] == []


# --- sessions: concurrency and disconnects ------------------------------------------------------


def _slow(chunk: bytes, pieces: int = 5, pause: float = 0.04):
    step = len(chunk) // pieces + 1
    for start in range(0, len(chunk), step):
        yield chunk[start : start + step]
        time.sleep(pause)


def _race(server, tenant, session, bodies: list[tuple[bytes, dict[str, str]]]) -> list[Any]:
    """Send each (chunk, headers) from its own thread and client at the same moment, slowly."""
    barrier = threading.Barrier(len(bodies))
    results: list[Any] = [None] * len(bodies)

    def send(i: int, chunk: bytes, headers: dict[str, str]) -> None:
        with server.client(tenant) as http:
            barrier.wait()
            try:
                results[i] = http.post(session["uri"], content=_slow(chunk), headers=headers)
            except Exception as exc:  # surfaced below
                results[i] = exc

    threads = [threading.Thread(target=send, args=(i, c, h)) for i, (c, h) in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for result in results:
        assert not isinstance(result, Exception), result
    return results


def test_concurrent_appends_at_same_offset_stay_byte_exact(server, tenant, client):
    """Both threads send the same first half at offset 0. Whoever gets in (one wins and the other gets
    409 offset_mismatch, or the later one stops the earlier, which answers 409 upload_interrupted with
    the offset it reached), what is staged is a prefix of the data, and resuming from the highest
    reported offset gives the exact object."""
    data = _pattern(200_000, seed=7)
    session = _create(client, "raced", len(data))
    half = data[:100_000]
    results = _race(server, tenant, session, [(half, {"Upload-Offset": "0"}), (half, {"Upload-Offset": "0"})])
    assert sorted(r.status_code for r in results) in ([200, 200], [200, 409], [409, 409]), [
        r.text for r in results
    ]
    for result in results:
        if result.status_code == 409:
            assert result.json()["error"]["code"] in ("offset_mismatch", "upload_interrupted"), result.text
        else:
            assert result.json() is None
        assert 0 <= int(result.headers["upload-offset"]) <= 100_000
    offset = _offset(client, session)
    assert offset == max(int(r.headers["upload-offset"]) for r in results)
    done = _append(client, session, data[offset:], offset=offset)
    assert done.status_code == 200, done.text
    assert done.json()["sha256"] == sha256(data)
    assert _content(client, done.json()) == data


def test_concurrent_appends_without_offset_never_interleave(server, tenant, client):
    """Two different chunks appended at once without an offset: each request's bytes land as one
    contiguous run ending at the offset it answered; nothing of one is mixed into the other's."""
    size = 120_000
    session = _create(client, "raced-append", size)
    chunks = {b"A": b"A" * 60_000, b"B": b"B" * 60_000}
    results = _race(server, tenant, session, [(chunks[b"A"], {}), (chunks[b"B"], {})])
    for result in results:
        assert result.status_code in (200, 409), result.text
        assert_no_traceback(result.text)
    # a 200 stored its whole chunk; a 409 upload_interrupted stored a part of it, up to its Upload-Offset
    landed = sorted(
        (int(r.headers["upload-offset"]), letter)
        for letter, r in zip(chunks, results, strict=True)
        if r.status_code == 200 or r.json()["error"]["code"] == "upload_interrupted"
    )
    assert landed, "neither append went through"
    expected = bytearray()
    for end, letter in landed:
        expected += letter * (end - len(expected))
    offset = _offset(client, session)
    assert offset == len(expected)
    if offset < size:
        done = _append(client, session, b"C" * (size - offset), offset=offset)
        assert done.status_code == 200, done.text
        expected += b"C" * (size - offset)
    assert _content(client, _get(client, "raced-append")) == bytes(expected)


def test_append_answered_200_stored_the_whole_chunk(server, tenant, client):
    """A chunk still streaming steadily when a second request for the session arrives is either stored
    whole (200 with the offset after it) or refused (409 with the offset reached), never 200 for part."""
    data = _pattern(100_000, seed=10)
    session = _create(client, "superseded", len(data))
    results: list[Any] = [None, None]

    def first() -> None:
        with server.client(tenant) as http:
            body = _slow(data, pieces=15, pause=0.1)  # about 1.5 s, never idle
            results[0] = http.post(session["uri"], content=body, headers={"Upload-Offset": "0"})

    thread = threading.Thread(target=first)
    thread.start()
    time.sleep(0.3)
    results[1] = _append(client, session, data[:10], offset=0)  # e.g. a client retry
    thread.join(timeout=30)
    streaming, second = results
    if streaming.status_code == 200:
        assert streaming.headers["upload-offset"] == str(len(data)), "200 for a chunk stored in part"
        assert_openai_error(second, 409, code="offset_mismatch")
    else:  # stopped: it kept what reached the disk, and the retry met exactly that offset
        assert_openai_error(streaming, 409, code="upload_interrupted")
        kept = int(streaming.headers["upload-offset"])
        assert second.status_code == (200 if kept == 0 else 409), second.text
        assert _offset(client, session) == (10 if kept == 0 else kept)


def test_client_disconnect_mid_chunk_keeps_arrived_bytes_and_resumes(server, tenant, client):
    data = _pattern(2 * 1024 * 1024, seed=8)
    session = _create(client, "interrupted.bin", len(data), sha=sha256(data))
    sent = 768 * 1024
    conn = RawConnection.open(server.url)
    conn.request(
        "POST",
        session["uri"],
        headers=[auth(tenant.key), ("Content-Type", "application/octet-stream")],
        body=data[:sent],
        content_length=len(data),
    )
    time.sleep(0.2)
    conn.close()

    # the disconnected request settles: the offset becomes positive and then stops moving
    assert wait_until(lambda: _offset(client, session) > 0, timeout=10), "no arrived bytes were kept"
    seen = [_offset(client, session)]
    assert wait_until(lambda: seen.append(_offset(client, session)) or seen[-1] == seen[-2], timeout=10)
    offset = seen[-1]
    assert 0 < offset <= sent

    done = _append(client, session, data[offset:], offset=offset)
    assert done.status_code == 200, done.text
    artifact = done.json()
    _assert_artifact(artifact, "interrupted.bin", data, "application/octet-stream")
    assert _content(client, artifact) == data


def test_an_idle_client_times_out_and_frees_the_upload(make_server):
    live = make_server(idle_timeout=1.0)
    tenant = live.new_tenant()
    data = _pattern(3 * 1024 * 1024, seed=12)
    with live.client(tenant) as client:
        session = _create(client, "idle.bin", len(data))
        with RawConnection.open(live.url) as conn:
            conn.request(
                "POST",
                session["uri"],
                headers=[auth(tenant.key), ("Upload-Offset", "0")],
                body=data[: 1536 * 1024],
                content_length=len(data),
            )
            started = time.monotonic()
            answer = conn.response()  # the client sends nothing more: the server gives up on it
            assert answer.status == 408 and 0.9 < time.monotonic() - started < 10
            assert conn.server_closed()
        offset = _offset(client, session)
        assert 0 < offset <= 1536 * 1024  # what arrived before the stall is kept
        started = time.monotonic()
        done = _append(client, session, data[offset:], offset=offset)
        assert done.status_code == 200, done.text
        assert time.monotonic() - started < 5, "the stalled request still held the upload"
        assert _content(client, done.json()) == data


# --- keys: replace, get, delete ---------------------------------------------------------------


def test_replace_same_key_swaps_on_completion(client):
    old = _put(client, "models/v1/weights.bin", b"old contents", mime_type="application/x-old")
    new_data = _pattern(3000, seed=9)
    session = _create(client, "models/v1/weights.bin", len(new_data), mime_type="application/x-new")
    assert _append(client, session, new_data[:1000]).status_code == 200
    # until the new upload completes, the key still shows the old object
    assert _get(client, "models/v1/weights.bin") == old
    assert _content(client, old) == b"old contents"
    done = _append(client, session, new_data[1000:])
    assert done.status_code == 200, done.text
    new = done.json()
    _assert_artifact(new, "models/v1/weights.bin", new_data, "application/x-new")
    assert new["id"] != old["id"]
    assert _get(client, "models/v1/weights.bin") == new
    assert _content(client, new) == new_data
    assert_openai_error(client.get(old["uri"]), 404)
    listing = client.get("/v1/artifacts").json()
    assert [a["id"] for a in listing["data"]] == [new["id"]]


def test_concurrent_completions_on_same_key_leave_one_object(server, tenant, client):
    made: dict[str, bytes] = {}  # artifact id -> its bytes
    for round_ in range(3):
        sessions = []
        for i in range(8):
            session = _create(client, "contended", 4)
            assert _append(client, session, b"%d-%d" % (round_, i)).status_code == 200
            sessions.append(session)
        barrier = threading.Barrier(len(sessions))
        results: list[Any] = [None] * len(sessions)

        def finish(i: int, session: dict[str, Any], barrier: threading.Barrier, results: list[Any]) -> None:
            with server.client(tenant) as http:
                barrier.wait()
                results[i] = http.post(session["uri"], content=b"!", headers={"Upload-Offset": "3"})

        threads = [
            threading.Thread(target=finish, args=(i, s, barrier, results)) for i, s in enumerate(sessions)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        _settle()
        for result in results:
            assert result.status_code == 200, result.text
        for i, result in enumerate(results):
            made[result.json()["id"]] = b"%d-%d!" % (round_, i)
    current = _get(client, "contended")
    assert current["id"] in made
    assert _content(client, current) == made[current["id"]]
    for file_id in made:
        if file_id != current["id"]:
            assert_openai_error(client.get(f"/v1/files/{file_id}/content"), 404)
    assert [a["id"] for a in client.get("/v1/artifacts").json()["data"]] == [current["id"]]
    assert wait_until(lambda: len(blob_files(server.settings.storage.data_dir)) == 1)


def test_get_and_delete_nested_keys_with_dots(client):
    keys = ["a.b/c.d/e.tar.gz", "dir/.hidden", "x/.../y", "v1.2.3", "-_.x/..a/b..", "A/B_C-D/e"]
    made = {key: _put(client, key, key.encode()) for key in keys}
    for key, artifact in made.items():
        assert _get(client, key) == artifact
        assert _content(client, artifact) == key.encode()
    target = "a.b/c.d/e.tar.gz"
    response = client.delete(f"/v1/artifacts/{target}")
    assert response.status_code == 200, response.text
    assert response.json() == {"key": target, "deleted": True}
    assert_openai_error(client.get(f"/v1/artifacts/{target}"), 404)
    assert_openai_error(client.delete(f"/v1/artifacts/{target}"), 404)
    assert_openai_error(client.get(made[target]["uri"]), 404)
    # the parent "directory" is no key and never was
    assert_openai_error(client.get("/v1/artifacts/a.b/c.d"), 404)
    assert_openai_error(client.delete("/v1/artifacts/a.b"), 404)
    remaining = sorted((k for k in keys if k != target), key=str.encode)
    assert _keys(client.get("/v1/artifacts").json()) == remaining
    for key in remaining:
        assert _content(client, _get(client, key)) == key.encode()


def test_longest_key_is_accepted(client):
    key = "k" * 1024
    artifact = _put(client, key, b"long")
    assert artifact["key"] == key
    assert _get(client, key) == artifact
    deep = "/".join(["d"] * 512)  # 1,023 characters
    assert _put(client, deep, b"deep")["key"] == deep


# --- listing ------------------------------------------------------------------------------------


def test_list_pages_by_start_index_without_skip_or_repeat(client):
    keys = ["b", "A", "a", "a-b", "a.b", "a/b", "a_b", "B/x", "Z", "z/1", "z/10", "z/2", "0", "9/x"]
    for key in keys:
        _put(client, key, b"")
    expected = sorted(keys, key=str.encode)
    everything = client.get("/v1/artifacts").json()
    assert _keys(everything) == expected
    assert everything["has_more"] is False
    assert everything["url"] is None
    assert everything["prefixes"] == []
    for item in everything["data"]:
        assert set(item) == ARTIFACT_FIELDS

    seen: list[str] = []
    start = 0
    while True:
        page = client.get("/v1/artifacts", params={"start_index": start, "limit": 4}).json()
        seen += _keys(page)
        start += 4
        if not page["has_more"]:
            assert page["url"] is None
            break
        assert len(page["data"]) == 4
    assert seen == expected

    # following the url field visits the same pages
    followed: list[str] = []
    url: str | None = "/v1/artifacts?limit=5"
    pages = 0
    while url is not None:
        assert url.startswith("/v1/artifacts?")
        page = client.get(url)
        assert page.status_code == 200, page.text
        followed += _keys(page.json())
        url = page.json()["url"]
        pages += 1
        assert pages < 10
    assert followed == expected
    assert pages == 3

    past_end = client.get("/v1/artifacts", params={"start_index": 100}).json()
    assert past_end["data"] == [] and past_end["has_more"] is False


def test_list_prefix_and_delimiter_fold_common_prefixes(client):
    for key in ("a/x", "a/b/c", "a/b/d", "ab", "b/a", "b/c/d", "c"):
        _put(client, key, key.encode())
    under_a = client.get("/v1/artifacts", params={"prefix": "a/"}).json()
    assert _keys(under_a) == ["a/b/c", "a/b/d", "a/x"]
    assert under_a["prefixes"] == []

    folded = client.get("/v1/artifacts", params={"prefix": "a/", "delimiter": "/"}).json()
    assert _keys(folded) == ["a/x"]
    assert folded["prefixes"] == ["a/b/"]

    top = client.get("/v1/artifacts", params={"delimiter": "/"}).json()
    assert _keys(top) == ["ab", "c"]
    assert top["prefixes"] == ["a/", "b/"]

    by_a = client.get("/v1/artifacts", params={"prefix": "a"}).json()
    assert _keys(by_a) == ["a/b/c", "a/b/d", "a/x", "ab"]
    nothing = client.get("/v1/artifacts", params={"prefix": "nope/"}).json()
    assert nothing["data"] == [] and nothing["prefixes"] == [] and nothing["has_more"] is False

    # a prefix is matched literally, never as a pattern
    for pattern in ("_", "a_", "_/"):
        assert client.get("/v1/artifacts", params={"prefix": pattern}).json()["data"] == [], pattern
    for pattern in ("%", "a%"):
        response = client.get("/v1/artifacts", params={"prefix": pattern})
        if response.status_code == 200:
            assert response.json()["data"] == [], pattern
        else:
            assert_openai_error(response, 400, param="prefix")


def test_list_delimiter_pages_visit_each_entry_once(client):
    for key in ("a/1", "a/2", "a/3", "b", "c/1", "c/2/x", "d", "e/1"):
        _put(client, key, b"")
    expected = ["a/", "b", "c/", "d", "e/"]
    for limit in (1, 2, 3):
        entries: list[str] = []
        url: str | None = f"/v1/artifacts?delimiter=/&limit={limit}"
        while url is not None:
            page = client.get(url).json()
            assert len(page["data"]) + len(page["prefixes"]) <= limit
            entries += _keys(page) + page["prefixes"]
            url = page["url"]
            assert len(entries) <= len(expected), (limit, entries)
        assert sorted(entries) == expected, (limit, entries)


def test_list_bad_parameters_are_400(client):
    for limit in ("0", "1001", "-1", "x", "1.5", ""):
        response = client.get("/v1/artifacts", params={"limit": limit})
        assert_openai_error(response, 400, code="invalid_request", param="limit")
    for start in ("-1", "x", "1.5"):
        response = client.get("/v1/artifacts", params={"start_index": start})
        assert_openai_error(response, 400, code="invalid_request", param="start_index")
    assert client.get("/v1/artifacts", params={"limit": "1000"}).status_code == 200
    assert client.get("/v1/artifacts", params={"limit": "1"}).status_code == 200


# --- bulk delete --------------------------------------------------------------------------------


def test_bulk_delete_reports_each_key_in_order(client):
    for key in ("keep", "x/1", "x/2"):
        _put(client, key, key.encode())
    response = client.post(
        "/v1/artifacts/bulk",
        json={"artifacts": [{"key": "x/1"}, {"key": "missing"}, {"key": "../bad"}, {"key": "x/2"}]},
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [item["key"] for item in data] == ["x/1", "missing", "../bad", "x/2"]
    assert data[0] == {"key": "x/1", "deleted": True}
    assert data[3] == {"key": "x/2", "deleted": True}
    assert data[1]["deleted"] is False and data[1]["error"]["code"] == "not_found"
    assert data[2]["deleted"] is False and data[2]["error"]["code"] == "invalid_request"
    for failed in (data[1], data[2]):
        assert set(failed) == {"key", "deleted", "error"}
        assert isinstance(failed["error"]["message"], str) and failed["error"]["message"]
    assert _keys(client.get("/v1/artifacts").json()) == ["keep"]
    assert_openai_error(client.get("/v1/artifacts/x/1"), 404)

    again = client.post("/v1/artifacts/bulk", json={"artifacts": [{"key": "x/1"}]}).json()["data"]
    assert again[0]["deleted"] is False and again[0]["error"]["code"] == "not_found"


def test_bulk_delete_size_bounds(client):
    for body in ({"artifacts": []}, {}, {"artifacts": "keep"}, {"artifacts": [{"key": "k"}] * 1001}):
        assert_openai_error(client.post("/v1/artifacts/bulk", json=body), 400, code="invalid_request")
    many = [{"key": f"none/{i}"} for i in range(1000)]
    response = client.post("/v1/artifacts/bulk", json={"artifacts": many})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [item["key"] for item in data] == [f"none/{i}" for i in range(1000)]
    assert all(item["deleted"] is False and item["error"]["code"] == "not_found" for item in data)


# --- key validation -----------------------------------------------------------------------------


def test_create_bad_keys_are_400_with_param_key(client):
    assert len(BAD_KEYS) >= 20
    for key in BAD_KEYS:
        response = client.post("/v1/artifacts", json={"key": key, "mime_type": "text/plain", "size": 1})
        assert_openai_error(response, 400, code="invalid_request", param="key")
    assert client.get("/v1/artifacts").json()["data"] == []


def test_get_and_delete_bad_keys_are_400_or_404_never_500(server, tenant, client):
    # objects that a normalised or decoded path could wrongly reach
    _put(client, "b", b"secret b")
    _put(client, "a/b", b"secret a/b")
    _put(client, "sessions-not-reserved/x", b"fine")
    for key in BAD_KEYS:
        if key == "":
            continue  # that is the list route
        target = "/v1/artifacts/" + quote(key, safe="/")
        for method in ("GET", "DELETE"):
            status, body = _raw_status(server, tenant.key, method, target)
            reserved = key.split("/")[0] in ("sessions", "bulk")
            allowed = (400, 404, 405) if reserved else (400, 404)
            assert status in allowed, (method, key[:40], status, body[:200])
            assert b"secret" not in body
            assert_no_traceback(body.decode("utf-8", "replace"))
            assert set(json.loads(body)) == {"error"}
    # the same keys through httpx (which may normalise the path itself)
    for key in BAD_KEYS:
        target = f"/v1/artifacts/{quote(key, safe='/')}"
        request = client.build_request("GET", target)
        if request.url.raw_path.decode() != target:
            continue  # httpx resolved the dot segments itself: the raw requests above cover those
        response = client.send(request)
        assert response.status_code in (400, 404, 405), (key[:40], response.status_code)
        assert b"secret" not in response.content
    assert sorted(_keys(client.get("/v1/artifacts").json())) == ["a/b", "b", "sessions-not-reserved/x"]


# --- tenancy ------------------------------------------------------------------------------------


def test_other_tenant_sees_nothing(server, tenant, client):
    owned = _put(client, "shared/name.txt", b"tenant one")
    session = _create(client, "pending", 10)
    assert _append(client, session, b"01234").status_code == 200

    other = server.new_tenant()
    with server.client(other) as intruder:
        assert_openai_error(intruder.get(session["uri"]), 404)
        assert_openai_error(intruder.post(session["uri"], content=b"56789"), 404)
        assert_openai_error(
            intruder.post(session["uri"], content=b"56789", headers={"Upload-Offset": "5"}), 404
        )
        assert_openai_error(intruder.delete(session["uri"]), 404)
        assert_openai_error(intruder.get("/v1/artifacts/shared/name.txt"), 404)
        assert_openai_error(intruder.delete("/v1/artifacts/shared/name.txt"), 404)
        assert_openai_error(intruder.get(owned["uri"]), 404)
        listing = intruder.get("/v1/artifacts", params={"delimiter": "/"}).json()
        assert listing["data"] == [] and listing["prefixes"] == []
        bulk = intruder.post("/v1/artifacts/bulk", json={"artifacts": [{"key": "shared/name.txt"}]}).json()
        assert bulk["data"][0]["deleted"] is False and bulk["data"][0]["error"]["code"] == "not_found"
        # the same key is a separate object in the other tenant's namespace
        theirs = _put(intruder, "shared/name.txt", b"tenant two")
        assert theirs["id"] != owned["id"]
        assert _content(intruder, theirs) == b"tenant two"

    # the owner's session and object are untouched
    assert _offset(client, session) == 5
    assert _get(client, "shared/name.txt") == owned
    assert _content(client, owned) == b"tenant one"
    done = _append(client, session, b"56789")
    assert done.status_code == 200, done.text
    assert _keys(client.get("/v1/artifacts").json()) == ["pending", "shared/name.txt"]


def test_an_artifact_is_a_file_by_its_id(client):
    created = _create(client, "as/file.txt", 5)
    artifact = _append(client, created, b"hello").json()
    described = client.get(f"/v1/files/{artifact['id']}").json()
    assert (described["id"], described["bytes"], described["filename"]) == (artifact["id"], 5, "file.txt")
    deleted = client.delete(f"/v1/files/{artifact['id']}")
    assert deleted.json() == {"id": artifact["id"], "object": "file", "deleted": True}
    assert_openai_error(client.get("/v1/artifacts/as/file.txt"), 404)
