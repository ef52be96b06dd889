"""Uploads from clients that misbehave: malformed or truncated multipart, bodies over the size cap,
clients that vanish or stall mid-body, and many uploads at once. After each, nothing half-written may
remain: no listed object, no staging file, no blob."""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from _support import (
    BOUNDARY,
    MULTIPART,
    RawConnection,
    assert_openai_error,
    blob_files,
    field_part,
    file_part,
    multipart,
    sha256,
    staging_files,
    upload_body,
    wait_until,
)

from cairn.api.multipart import MAX_FORM_OVERHEAD_BYTES


def _assert_nothing_stored(server, http: httpx.Client) -> None:
    assert http.get("/v1/files").json()["data"] == []
    data_dir = server.settings.storage.data_dir
    assert wait_until(lambda: staging_files(data_dir) == [], timeout=5), staging_files(data_dir)
    assert blob_files(data_dir) == []


def _upload_head(key: str, content_length: int, content_type: str = MULTIPART) -> bytes:
    return (
        f"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {content_length}\r\n\r\n"
    ).encode()


def _post(client, body: bytes, content_type: str = MULTIPART) -> httpx.Response:
    return client.post("/v1/files", content=body, headers={"Content-Type": content_type})


def test_multipart_garbage_or_wrong_boundary_is_rejected(server, client):
    for body in (os.urandom(4096), b"\x00" * 1000, b"hello world", b"--" + BOUNDARY + b"\r\n\r\n\r\n"):
        assert_openai_error(_post(client, body), 400, code="invalid_request")
    body = multipart(field_part("purpose", "assistants"), file_part(b"data"), boundary=b"some-other-boundary")
    assert_openai_error(_post(client, body), 400, code="invalid_request")
    long_boundary = "multipart/form-data; boundary=" + "b" * 300
    assert_openai_error(_post(client, upload_body(b"x"), long_boundary), 400, code="invalid_request")
    _assert_nothing_stored(server, client)


def test_multipart_bad_part_headers_are_rejected(server, client):
    no_disposition = ([b"Content-Type: text/plain"], b"data")
    body = multipart(field_part("purpose", "assistants"), no_disposition)
    assert_openai_error(_post(client, body), 400, code="invalid_request")
    nameless = ([b'Content-Disposition: form-data; filename="a.txt"'], b"data")
    assert_openai_error(_post(client, multipart(field_part("purpose", "assistants"), nameless)), 400)
    huge_header = ([b'Content-Disposition: form-data; name="file"; filename="' + b"a" * 70_000 + b'"'], b"x")
    assert_openai_error(_post(client, multipart(field_part("purpose", "assistants"), huge_header)), 400)
    many_headers = (
        [b'Content-Disposition: form-data; name="file"; filename="a"', *[b"X-H%d: v" % i for i in range(50)]],
        b"x",
    )
    assert_openai_error(_post(client, multipart(field_part("purpose", "assistants"), many_headers)), 400)
    _assert_nothing_stored(server, client)


def test_multipart_two_file_parts_are_rejected(server, client):
    big = os.urandom(2 * 1024 * 1024)  # large enough that the first part was really staged
    body = multipart(
        field_part("purpose", "assistants"), file_part(big, "a.bin"), file_part(b"second", "b.bin")
    )
    assert_openai_error(_post(client, body), 400, code="invalid_request", param="file")
    other_field = multipart(
        field_part("purpose", "assistants"), file_part(b"a", "a.bin"), file_part(b"b", "b.bin", name="extra")
    )
    assert_openai_error(_post(client, other_field), 400, code="invalid_request", param="extra")
    _assert_nothing_stored(server, client)


def test_multipart_invalid_purpose_after_file_discards_the_staged_bytes(server, client):
    body = multipart(file_part(os.urandom(1_500_000), "a.bin"), field_part("purpose", "nope"))
    assert_openai_error(_post(client, body), 400, code="invalid_request", param="purpose")
    missing = multipart(file_part(os.urandom(1_500_000), "a.bin"))
    assert_openai_error(_post(client, missing), 400, code="invalid_request", param="purpose")
    _assert_nothing_stored(server, client)


def test_multipart_truncated_body_is_rejected(server, client, tenant):
    """The body ends (at its declared Content-Length) before the closing boundary."""
    data = os.urandom(1_500_000)
    full = multipart(field_part("purpose", "assistants"), file_part(data, "t.bin"))
    cuts = {
        "in_file_data": full[: len(full) // 2],
        "after_file_part": multipart(
            field_part("purpose", "assistants"), file_part(data, "t.bin"), close=False
        ),
        "in_part_headers": full[: full.index(b"filename=") + 4],
        "before_closing_dashes": full[:-4],
    }
    for cut, truncated in cuts.items():
        with RawConnection.open(server.url) as conn:
            conn.send(_upload_head(tenant.key, len(truncated)) + truncated)
            response = conn.response()
        assert response.status == 400, cut
        assert b"closing boundary" in response.body or b"Malformed" in response.body, cut
        _assert_nothing_stored(server, client)


def test_declared_length_over_max_is_refused_before_the_body(make_server):
    live = make_server(max_upload_bytes=1000)
    tenant = live.new_tenant()
    with RawConnection.open(live.url, timeout=5) as conn:
        started = time.monotonic()
        conn.send(_upload_head(tenant.key, 50 * 1024 * 1024))  # headers only: no body byte is ever sent
        response = conn.response()
        elapsed = time.monotonic() - started
    assert response.status == 413
    assert b'"code":"too_large"' in response.body
    assert response.header("connection") == "close"  # the unread body is not drained
    assert elapsed < 3, "the server waited for a body it should have refused"
    with live.client(tenant) as http:
        _assert_nothing_stored(live, http)


def test_streamed_body_over_max_is_413_and_leaves_nothing(make_server):
    cap = 2 * 1024 * 1024  # over one staging batch, so the refused uploads were really being written
    live = make_server(max_upload_bytes=cap)
    tenant = live.new_tenant()
    with live.client(tenant) as http:
        # a Content-Length small enough to pass the early check; the file part itself is too big
        body = upload_body(os.urandom(cap + 900_000))
        assert len(body) - MAX_FORM_OVERHEAD_BYTES <= cap, "the body must pass the early Content-Length check"
        assert_openai_error(_post(http, body), 413, code="too_large")

        # no Content-Length at all: chunked transfer encoding
        def chunks():
            yield upload_body(b"")[: -len(b"\r\n--" + BOUNDARY + b"--\r\n")]
            for _ in range(48):
                yield os.urandom(64 * 1024)
            yield b"\r\n--" + BOUNDARY + b"--\r\n"

        response = http.post("/v1/files", content=chunks(), headers={"Content-Type": MULTIPART})
        assert "content-length" not in response.request.headers
        assert_openai_error(response, 413, code="too_large")
        _assert_nothing_stored(live, http)

        # exactly at the cap is accepted; one byte over is not
        at_cap = os.urandom(cap)
        assert _post(http, upload_body(at_cap)).status_code == 200
        assert_openai_error(_post(http, upload_body(at_cap + b"!")), 413)
        listed = http.get("/v1/files").json()["data"]
        assert [f["bytes"] for f in listed] == [cap]
        assert http.get(f"/v1/files/{listed[0]['id']}/content").content == at_cap
        assert staging_files(live.settings.storage.data_dir) == []
        assert len(blob_files(live.settings.storage.data_dir)) == 1


def _send_most_of_an_upload(conn: RawConnection, server, key: str) -> None:
    """Send all but the last 64 KiB of a 3 MiB upload, and wait until the server is staging it
    (the staging file exists once the first batch of the file part has been written)."""
    body = upload_body(os.urandom(3 * 1024 * 1024), "unfinished.bin")
    conn.send(_upload_head(key, len(body)) + body[: -64 * 1024])
    staging = server.settings.storage.data_dir / "staging"
    assert wait_until(lambda: any(staging.iterdir())), "the server never started staging the upload"


def test_client_disconnect_mid_upload_leaves_nothing(server, client, tenant):
    conn = RawConnection.open(server.url)
    _send_most_of_an_upload(conn, server, tenant.key)
    conn.close()
    data_dir = server.settings.storage.data_dir
    assert wait_until(lambda: staging_files(data_dir) == [], timeout=5), "the staged file was kept"
    _assert_nothing_stored(server, client)
    # the server still takes uploads afterwards
    after = client.post("/v1/files", data={"purpose": "assistants"}, files={"file": ("ok.txt", b"ok")})
    assert after.status_code == 200


def test_client_disconnect_mid_upload_is_not_logged_as_a_crash(server, client, tenant, caplog):
    staging = server.settings.storage.data_dir / "staging"
    with caplog.at_level(logging.WARNING):
        conn = RawConnection.open(server.url)
        _send_most_of_an_upload(conn, server, tenant.key)
        conn.close()
        assert wait_until(lambda: not any(staging.iterdir()), timeout=5)
        assert client.get("/health").status_code == 200
        time.sleep(0.3)
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert crashes == [], [r.getMessage() for r in crashes]


def test_idle_client_gets_408_and_leaves_nothing(make_server):
    live = make_server(idle_timeout=0.5)
    tenant = live.new_tenant()
    with RawConnection.open(live.url, timeout=10) as conn:
        started = time.monotonic()
        _send_most_of_an_upload(conn, live, tenant.key)  # then stall
        response = conn.response()
        elapsed = time.monotonic() - started
    assert response.status == 408
    assert b'"code":"request_timeout"' in response.body
    assert response.header("connection") == "close"  # the stalled body must not hold the connection
    assert 0.4 < elapsed < 5
    with live.client(tenant) as http:
        _assert_nothing_stored(live, http)
    # stalling before the file part even starts is timed out the same way
    body = upload_body(b"x" * 1000)
    with RawConnection.open(live.url, timeout=10) as conn:
        conn.send(_upload_head(tenant.key, len(body)) + body[:20])
        assert conn.response().status == 408
    with live.client(tenant) as http:
        _assert_nothing_stored(live, http)


def test_slow_but_steady_client_is_not_timed_out(make_server):
    live = make_server(idle_timeout=0.5)
    tenant = live.new_tenant()
    data = os.urandom(64 * 1024)
    body = upload_body(data, "slow.bin")
    with RawConnection.open(live.url, timeout=10) as conn:
        conn.send(_upload_head(tenant.key, len(body)))
        step = len(body) // 6 + 1
        for start in range(0, len(body), step):  # ~0.9 s in all, never idle for 0.5 s
            conn.send(body[start : start + step])
            time.sleep(0.15)
        response = conn.response()
    assert response.status == 200, response.body
    with live.client(tenant) as http:
        file_id = http.get("/v1/files").json()["data"][0]["id"]
        assert http.get(f"/v1/files/{file_id}/content").content == data


def test_concurrent_uploads_are_byte_exact(server, client):
    payloads = [os.urandom(100_000 + i * 7919) for i in range(20)]

    def one(i: int) -> tuple[int, dict]:
        response = client.post(
            "/v1/files", data={"purpose": "assistants"}, files={"file": (f"c{i}.bin", payloads[i])}
        )
        assert response.status_code == 200, response.text
        return i, response.json()

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, range(20)))
    assert len({created["id"] for _, created in results}) == 20
    for i, created in results:
        assert created["bytes"] == len(payloads[i])
        assert created["filename"] == f"c{i}.bin"
        download = client.get(f"/v1/files/{created['id']}/content")
        assert download.headers["etag"] == f'"{sha256(payloads[i])}"'
        assert sha256(download.content) == sha256(payloads[i])
    assert len(client.get("/v1/files").json()["data"]) == 20
    assert staging_files(server.settings.storage.data_dir) == []
    assert len(blob_files(server.settings.storage.data_dir)) == 20
