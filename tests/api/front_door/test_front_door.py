"""The front door under hostile input, over raw sockets against a real server: no body is read before
the key is checked, JSON bodies are capped and timed, request heads are bounded in size, count and time,
open mode refuses what a browser could send for another site, and an append cut short keeps what
arrived."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from _support import RawConnection, assert_openai_error, wait_until

from cairn.settings import Settings

if TYPE_CHECKING:
    from conftest import LiveServer


JSON_ROUTES = [
    "/v1/artifacts",
    "/v1/artifacts/bulk",
    "/v1/buckets",
    "/v1/uploads",
    "/v1/uploads/upload-0123456789abcdef/complete",
]


def exchange(server: LiveServer, data: bytes, *, wait: float = 10.0) -> tuple[int | None, bytes, float]:
    """Send ``data`` and read until the server closes or ``wait`` passes: (status, bytes, seconds)."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        with contextlib.suppress(ConnectionError):  # refused mid-send: what came before is still readable
            sock.sendall(data)
        received = bytearray()
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionError):
            pass
    elapsed = time.monotonic() - started
    status = int(received.split(b" ", 2)[1]) if received.startswith(b"HTTP/1.1 ") else None
    return status, bytes(received), elapsed


def head(method: str, target: str, *lines: str, host: str = "127.0.0.1") -> bytes:
    return ("\r\n".join([f"{method} {target} HTTP/1.1", f"Host: {host}", *lines]) + "\r\n\r\n").encode()


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_a_json_route_refuses_a_missing_key_before_reading_the_body(server: LiveServer, route: str) -> None:
    request = head("POST", route, "Content-Type: application/json", "Content-Length: 300000000")
    status, answer, elapsed = exchange(server, request + b'{"key": "' + b"a" * 4096)
    assert status == 401, answer
    assert elapsed < 5, "the server waited for (or read) the body before answering"
    assert answer.endswith(b"}"), "the connection should close after the answer, the rest unread"


def test_json_bodies_are_capped_while_they_stream(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(max_json_bytes=4096)
    tenant = server.new_tenant()
    auth = f"Authorization: Bearer {tenant.key}"
    body = b'{"key": "a/b", "mime_type": "text/plain", "size": 1}'
    exact = body + b" " * (4096 - len(body))
    with server.client(tenant) as client:
        accepted = client.post("/v1/artifacts", content=exact, headers={"Content-Type": "application/json"})
        assert accepted.status_code == 200, accepted.text
        over = client.post(
            "/v1/artifacts", content=exact + b" ", headers={"Content-Type": "application/json"}
        )
        error = assert_openai_error(over, 413, code="too_large")
        assert "4,096 bytes" in error["message"]

    declared = head(
        "POST", "/v1/artifacts", auth, "Content-Type: application/json", "Content-Length: 300000000"
    )
    status, answer, elapsed = exchange(server, declared)
    assert (status, elapsed < 5) == (413, True), answer

    chunk = b"2000\r\n" + b" " * 0x2000 + b"\r\n"
    chunked = head(
        "POST", "/v1/artifacts", auth, "Content-Type: application/json", "Transfer-Encoding: chunked"
    )
    status, answer, _ = exchange(server, chunked + chunk * 4)
    assert status == 413, answer


def test_a_stalled_json_body_gets_408(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(idle_timeout=1)
    tenant = server.new_tenant()
    request = head(
        "POST",
        "/v1/artifacts",
        f"Authorization: Bearer {tenant.key}",
        "Content-Type: application/json",
        "Content-Length: 1000",
    )
    status, answer, elapsed = exchange(server, request + b'{"key":')
    assert status == 408, answer
    assert b"request_timeout" in answer
    assert elapsed < 5


def test_a_head_that_stalls_gets_408_and_a_silent_connection_is_closed(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server(idle_timeout=1)
    status, answer, elapsed = exchange(server, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert status == 408, answer
    assert 0.9 < elapsed < 5
    status, answer, elapsed = exchange(server, b"")
    assert (status, answer) == (None, b"")
    assert 0.9 < elapsed < 5


def test_an_idle_connection_outlasts_the_clients_keepalive(
    tmp_path: Path, start_servers: Callable[[Settings], LiveServer]
) -> None:
    """httpx and the openai SDK keep an idle connection 5 s: the server keeps it longer, so a request
    sent after 5 s on it is answered, never met by the server's close. The connection is the server's
    alone, whatever the backend: SQLite and the local disk."""
    default = start_servers(Settings(data_dir=tmp_path / "default", min_free_bytes=0))
    with RawConnection.open(default.url) as conn:
        conn.request("GET", "/health")
        assert conn.response().status == 200
        assert not conn.server_closed(wait=5.5)
        conn.request("GET", "/health")
        assert conn.response().status == 200
    short = start_servers(Settings(data_dir=tmp_path / "short", min_free_bytes=0, keepalive_timeout=0.5))
    with RawConnection.open(short.url) as conn:
        conn.request("GET", "/health")
        assert conn.response().status == 200
        assert conn.server_closed(wait=3)


def test_request_heads_are_bounded(server: LiveServer) -> None:
    def get(*lines: str) -> tuple[int | None, bytes]:
        status, answer, _ = exchange(server, head("GET", "/health", "Connection: close", *lines))
        return status, answer

    assert get(*["X-N: 1"] * 98)[0] == 200  # 100 headers with Host and Connection
    assert get(*["X-N: 1"] * 99)[0] == 431
    assert get(*["X-N: 1"] * 20_000)[0] == 431
    assert get("X-Big: " + "a" * 8000)[0] == 200
    status, answer = get("X-Big: " + "a" * 8200)
    assert status == 431 and b"8,192 bytes" in answer
    assert get(*[f"X-{i}: " + "a" * 7000 for i in range(5)])[0] == 431  # 35 KB in all, each under 8 KiB
    assert exchange(server, head("GET", "/health?" + "q" * 40_000))[0] == 431


def test_many_small_requests_on_one_connection_are_not_one_big_head(server: LiveServer) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"p" * 100 + b"\r\n\r\n"
    with RawConnection.open(server.url) as conn:
        conn.send(request * 400)  # 60 KB pipelined: far more than one head may be
        assert {conn.response().status for _ in range(400)} == {200}
        for _ in range(100):  # and one by one, keep-alive
            conn.send(request)
            assert conn.response().status == 200


def test_a_huge_header_is_refused_while_the_server_keeps_answering(server: LiveServer) -> None:
    outcome: dict[str, object] = {}

    def send_huge() -> None:
        outcome["answer"] = exchange(server, head("GET", "/health", "X-Big: " + "a" * (40 << 20)))

    sender = threading.Thread(target=send_huge)
    sender.start()
    slowest = 0.0
    with httpx.Client(base_url=server.url, timeout=10) as client:
        while sender.is_alive():
            started = time.monotonic()
            assert client.get("/health").status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.02)
    sender.join()
    status, _, elapsed = outcome["answer"]  # type: ignore[misc]
    assert status in (431, None)  # None: reset while still sending, after the 431 went out
    assert elapsed < 5
    assert slowest < 2, f"/health took {slowest:.2f} s while the header arrived"


def test_open_mode_refuses_other_hosts_and_cross_site_changes(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(keyed=False)
    port = server.url.rsplit(":", 1)[1]
    upload = httpx.post(
        f"{server.url}/api/v1/files/upload", files={"file": ("a.txt", b"original")}, data={"dir": "notes"}
    )
    assert upload.status_code == 200, upload.text

    with server.client() as client:
        for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
            refused = client.get("/api/v1/files", params={"path": "notes"}, headers={"Host": host})
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"]["code"] == "host_not_allowed"
            assert "a.txt" not in refused.text
        for host in (f"localhost:{port}", f"app.localhost:{port}", f"[::1]:{port}", f"127.0.0.2:{port}"):
            assert (
                client.get("/api/v1/files", params={"path": "notes"}, headers={"Host": host}).status_code
                == 200
            )
        assert client.get("/v1/files", headers={"Host": "evil.example"}).json()["error"]["code"] == (
            "host_not_allowed"
        )

        def overwrite(headers: dict[str, str]) -> httpx.Response:
            return client.post(
                "/api/v1/files/upload",
                files={"file": ("a.txt", b"overwritten")},
                data={"dir": "notes"},
                headers=headers,
            )

        for headers in (
            {"Origin": "https://evil.example"},
            {"Origin": "null"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Origin": f"http://localhost:{port}", "Sec-Fetch-Site": "cross-site"},
        ):
            refused = overwrite(headers)
            assert refused.status_code == 403, (headers, refused.text)
            assert refused.json()["error"]["code"] == "cross_site_request"
        assert client.get("/api/v1/files/download", params={"path": "notes/a.txt"}).content == b"original"
        assert client.get("/api/v1/files", headers={"Origin": "https://evil.example"}).status_code == 200
        for headers in ({"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"}, {}):
            assert overwrite(headers).status_code == 200
        assert client.get("/api/v1/files/download", params={"path": "notes/a.txt"}).content == b"overwritten"


def test_keyed_mode_serves_any_host_and_origin(server: LiveServer) -> None:
    tenant = server.new_tenant()
    with server.client(tenant) as client:
        headers = {
            "Host": "files.example.com",
            "Origin": "https://app.example",
            "Sec-Fetch-Site": "cross-site",
        }
        created = client.post(
            "/v1/files", files={"file": ("a.txt", b"x")}, data={"purpose": "batch"}, headers=headers
        )
        assert created.status_code == 200, created.text


def test_an_append_cut_short_keeps_what_arrived(server: LiveServer) -> None:
    tenant = server.new_tenant()
    with server.client(tenant) as client:
        for attempt in range(3):
            created = client.post(
                "/v1/artifacts",
                json={"key": f"cut/{attempt}", "mime_type": "application/octet-stream", "size": 100},
            )
            upload_id = created.json()["id"]
            with RawConnection.open(server.url) as conn:
                conn.request(
                    "POST",
                    f"/v1/artifacts/sessions/{upload_id}",
                    headers=[("Authorization", f"Bearer {tenant.key}"), ("Upload-Offset", "0")],
                    body=b"x" * 40,
                    content_length=100,
                )
            # closed right after the 40 bytes went out
            status_url = f"/v1/artifacts/sessions/{upload_id}"
            assert wait_until(lambda url=status_url: client.get(url).json()["offset"] == 40)


def test_bad_bodies_get_messages_that_name_the_problem(server: LiveServer) -> None:
    tenant = server.new_tenant()
    with server.client(tenant) as client:

        def post(body: bytes, content_type: str = "application/json") -> dict[str, str]:
            response = client.post("/v1/artifacts", content=body, headers={"Content-Type": content_type})
            return assert_openai_error(response, 400, code="invalid_request")

        assert post(b"[]")["message"] == "The body must be a JSON object."
        assert post(b"")["message"] == "The request needs a JSON body."
        assert "not valid JSON" in post(b"[" * 100_000 + b"]" * 100_000)["message"]
        assert "not valid JSON" in post(b'{"key": ')["message"]
        wrong_type = post(
            json.dumps({"key": "a", "mime_type": "text/plain", "size": 1}).encode(), "text/plain"
        )
        assert "Content-Type: application/json" in wrong_type["message"]
        assert "text/plain" in wrong_type["message"]
        assert wrong_type["param"] == "Content-Type"
        missing_field = post(b'{"mime_type": "text/plain", "size": 1}')
        assert missing_field["param"] == "key"
