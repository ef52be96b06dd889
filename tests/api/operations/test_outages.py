"""PostgreSQL and S3 going away under a running server, through a proxy the test controls (the machine's
shared services are never stopped): while a dependency is down every API family answers 503 in its own
envelope and ``/health?deep=1`` names the failed dependency; an upload it breaks leaves nothing; and when
it comes back, or after a restart that broke every pooled connection, the next requests succeed without
restarting Cairn. (Redis going away: test_rate_limits.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from _support import (
    MULTIPART,
    RawConnection,
    TcpProxy,
    assert_no_traceback,
    assert_openai_error,
    blob_files,
    staging_files,
    upload,
    upload_body,
    wait_until,
)

TUS = {"Tus-Resumable": "1.0.0"}
SSL_REQUEST = struct.pack("!i", 80877103)


@pytest.fixture
def postgres(backend) -> Iterator[TcpProxy]:
    if not backend.database_url.startswith("postgresql"):
        pytest.skip("SQLite is a file of the server, not a service that can go away")
    proxy = TcpProxy(backend.database_url)
    yield proxy
    proxy.close()


class BreakingAnswers(TcpProxy):
    """A proxy that, once armed, breaks the answer to the next GET right after its headers."""

    armed = False
    _breaking = False

    def relay(self, data: bytes, from_client: bool) -> tuple[bytes, bool]:
        if from_client:
            self._breaking = self.armed and data.startswith(b"GET ")
            return data, True
        if not self._breaking:
            return data, True
        self.armed = self._breaking = False
        return data[: data.index(b"\r\n\r\n") + 4], False


@pytest.fixture
def s3(backend) -> Iterator[BreakingAnswers]:
    if "s3_endpoint_url" not in backend.blob_settings:
        pytest.skip("the bytes are on the local disk")
    proxy = BreakingAnswers(backend.blob_settings["s3_endpoint_url"])
    yield proxy
    proxy.close()


def _postgres_turning_away(sqlstate: str | None, message: str = "") -> Callable[[socket.socket], None]:
    """How a PostgreSQL server that cannot serve answers a new client: after the client's startup
    message, a FATAL error with ``sqlstate``, or (``None``) a bare hang-up."""

    def answer(sock: socket.socket) -> None:
        with sock, contextlib.suppress(OSError):
            sock.settimeout(5)
            if _startup_message(sock) == SSL_REQUEST:  # no TLS here: the client goes on in plain text
                sock.sendall(b"N")
                _startup_message(sock)
            if sqlstate is not None:
                fields = b"SFATAL\0VFATAL\0C%s\0M%s\0\0" % (sqlstate.encode(), message.encode())
                sock.sendall(b"E" + struct.pack("!i", 4 + len(fields)) + fields)

    return answer


def _startup_message(sock: socket.socket) -> bytes:
    (length,) = struct.unpack("!i", _receive(sock, 4))
    return _receive(sock, length - 4)


def _receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the client hung up")
        data += chunk
    return data


POSTGRES_REFUSALS = {
    "connection-refused": None,
    "hang-up-in-handshake": _postgres_turning_away(None),
    "starting-up": _postgres_turning_away("57P03", "the database system is starting up"),
    "no-connection-left": _postgres_turning_away("53300", "sorry, too many clients already"),
}


def _down(proxy: TcpProxy, answer: Callable[[socket.socket], None] | None = None) -> None:
    proxy.refuse(answer)
    proxy.cut()


def _deep_health(client: httpx.Client) -> tuple[int, dict[str, str]]:
    response = client.get("/health", params={"deep": 1})
    assert_no_traceback(response.text)
    return response.status_code, response.json()["checks"]


def _assert_workspace_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == "unavailable", body
    assert_no_traceback(response.text)


def _assert_tus_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["tus-resumable"] == "1.0.0" and response.text
    assert_no_traceback(response.text)


def _file_ids(client: httpx.Client) -> list[str]:
    response = client.get("/v1/files")
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["data"]]


@pytest.mark.parametrize("refusal", POSTGRES_REFUSALS.values(), ids=POSTGRES_REFUSALS.keys())
def test_database_down_is_503_in_each_envelope_then_recovers(make_server, postgres, refusal):
    live = make_server(database_url=postgres.url)
    with live.client(live.new_tenant()) as client:
        kept = upload(client, b"kept")
        _down(postgres, refusal)
        assert_openai_error(client.get("/v1/files"), 503, code="unavailable")
        refused = client.post("/v1/files", data={"purpose": "assistants"}, files={"file": ("a.txt", b"a")})
        assert "database" in assert_openai_error(refused, 503, code="unavailable")["message"]
        _assert_workspace_unavailable(client.get("/api/v1/files"))
        _assert_tus_unavailable(client.post("/v1/tus/", headers={**TUS, "Upload-Length": "1"}))
        assert client.get("/health").status_code == 200  # alive: only the deep check looks further
        status, checks = _deep_health(client)
        assert status == 503 and checks["blobs"] == "ok"
        assert "database" in checks["metadata"]

        postgres.restore()  # Cairn is not restarted
        assert _file_ids(client) == [kept["id"]]  # the refused upload left nothing
        assert _deep_health(client) == (200, {"metadata": "ok", "blobs": "ok"})


def test_database_restart_is_invisible_to_the_next_requests(make_server, postgres, backend):
    live = make_server(database_url=postgres.url)
    with live.client(live.new_tenant()) as client:
        kept = upload(client, b"kept")
        for _ in range(3):
            postgres.cut()  # every pooled connection is dead; the server takes new ones at once
            assert client.get(f"/v1/files/{kept['id']}").status_code == 200
            assert client.get("/api/v1/files").status_code == 200
        asyncio.run(_terminate_backends(backend.database_url))  # as a shutting-down PostgreSQL does
        assert _file_ids(client) == [kept["id"]]
        # a write that meets a connection the termination killed answers 503 once (``_AsyncRunner``)
        form = {"data": {"purpose": "assistants"}, "files": {"file": ("a.bin", b"after")}}
        after = client.post("/v1/files", **form)
        if after.status_code == 503:
            assert after.json()["error"]["code"] == "unavailable"
            after = client.post("/v1/files", **form)
        assert after.status_code == 200 and after.json()["bytes"] == 5


async def _terminate_backends(database_url: str) -> None:
    """End every session of the test's database but this one, each told "terminating connection due
    to administrator command"."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()


def _upload_across_outage(
    live, key: str, proxy: TcpProxy, size: int, under_way: Callable[[], bool] = lambda: True
) -> None:
    """Send half of an upload, take the dependency down once ``under_way()``, send the rest: 503 in
    the OpenAI envelope."""
    body = upload_body(b"x" * size, "broken.bin")
    head = (
        f"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: {MULTIPART}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with RawConnection.open(live.url, timeout=60) as conn:  # S3 is retried before its 503: seconds
        conn.send(head + body[: len(body) // 2])
        assert wait_until(under_way, timeout=10)
        _down(proxy)
        conn.send(body[len(body) // 2 :])
        response = conn.response()
    assert response.status == 503, response.body
    assert response.header("content-type") == "application/json"
    assert response.body.startswith(b'{"error":{') and b'"code":"unavailable"' in response.body
    assert_no_traceback(response.body.decode())
    proxy.restore()


def _assert_nothing_stored(live, client: httpx.Client, backend) -> None:
    assert _file_ids(client) == []
    data_dir = live.settings.storage.data_dir
    assert wait_until(lambda: staging_files(data_dir) == [], timeout=5), staging_files(data_dir)
    assert blob_files(data_dir) == []
    if backend.s3_client is not None:
        assert _bucket_contents(live, backend) == ([], [])


def _bucket_contents(live, backend) -> tuple[list[str], list[Any]]:
    """The keys in the server's bucket, and its multipart uploads in progress."""
    bucket = live.settings.storage.blob_store.removeprefix("s3://").split("/", 1)[0]
    keys = [item["Key"] for item in backend.s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return keys, backend.s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_upload_the_database_breaks_leaves_nothing(make_server, postgres, backend):
    live = make_server(database_url=postgres.url)
    tenant = live.new_tenant()
    with live.client(tenant) as client:
        assert _file_ids(client) == []  # the key is known now: the upload gets as far as its row
        _upload_across_outage(live, tenant.key, postgres, 3 << 20)
        _assert_nothing_stored(live, client, backend)
        assert upload(client, b"after")["bytes"] == 5


def test_object_store_down_is_503_in_each_envelope_then_recovers(make_server, s3):
    live = make_server(s3_endpoint_url=s3.url)
    with live.client(live.new_tenant()) as client:
        kept = upload(client, b"kept")
        workspace_kept = client.post("/api/v1/files/upload", files={"file": ("w.txt", b"workspace")})
        assert workspace_kept.status_code == 200, workspace_kept.text
        session = client.post("/v1/tus/", headers={**TUS, "Upload-Length": "4"})
        assert session.status_code == 201, session.text
        _down(s3)
        # each request below waits out the S3 client's retries (seconds): one per API family
        assert _file_ids(client) == [kept["id"]]  # listing needs only the database
        download = client.get(f"/v1/files/{kept['id']}/content")
        assert "object store" in assert_openai_error(download, 503, code="unavailable")["message"]
        _assert_workspace_unavailable(client.get("/api/v1/files/download", params={"path": "w.txt"}))
        patch = client.patch(
            session.headers["location"],
            content=b"tus!",
            headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        )
        _assert_tus_unavailable(patch)
        status, checks = _deep_health(client)  # the store's message, or that it gave none in time
        assert status == 503 and checks["metadata"] == "ok" and checks["blobs"] != "ok"

        s3.restore()  # Cairn is not restarted
        assert client.get(f"/v1/files/{kept['id']}/content").content == b"kept"
        assert client.get("/api/v1/files/download", params={"path": "w.txt"}).content == b"workspace"
        assert client.head(session.headers["location"], headers=TUS).headers["upload-offset"] == "0"
        assert _deep_health(client) == (200, {"metadata": "ok", "blobs": "ok"})


def test_object_store_restart_is_invisible_to_the_next_requests(make_server, s3):
    live = make_server(s3_endpoint_url=s3.url)
    with live.client(live.new_tenant()) as client:
        kept = upload(client, b"kept")
        for _ in range(3):
            s3.cut()  # every pooled connection is dead; the server takes new ones at once
            assert client.get(f"/v1/files/{kept['id']}/content").content == b"kept"
            assert upload(client, b"more")["bytes"] == 4


def test_object_store_answer_broken_before_its_body_is_503(make_server, s3):
    live = make_server(s3_endpoint_url=s3.url)
    with live.client(live.new_tenant()) as client:
        kept = upload(client, bytes(100_000))
        s3.armed = True
        broken = client.get(f"/v1/files/{kept['id']}/content")
        assert "object store" in assert_openai_error(broken, 503, code="unavailable")["message"]
        assert not s3.armed
        assert client.get(f"/v1/files/{kept['id']}/content").content == bytes(100_000)


def test_upload_the_object_store_breaks_leaves_nothing(make_server, s3, backend):
    live = make_server(s3_endpoint_url=s3.url)
    tenant = live.new_tenant()
    with live.client(tenant) as client:
        assert _file_ids(client) == []
        _upload_across_outage(live, tenant.key, s3, 3 << 20)  # one part: it goes up whole at the end
        _assert_nothing_stored(live, client, backend)
        assert upload(client, b"after")["bytes"] == 5


def test_upload_the_object_store_breaks_after_its_first_part_leaves_no_object(make_server, s3, backend):
    live = make_server(s3_endpoint_url=s3.url)
    tenant = live.new_tenant()

    def multipart_started() -> bool:
        return _bucket_contents(live, backend)[1] != []

    with live.client(tenant) as client:
        assert _file_ids(client) == []
        _upload_across_outage(live, tenant.key, s3, 20 << 20, multipart_started)
        assert _file_ids(client) == []
        # no object, but the multipart upload that S3 refused to abort stays for the sweep to abort
        assert _bucket_contents(live, backend)[0] == []
        assert upload(client, b"after")["bytes"] == 5
