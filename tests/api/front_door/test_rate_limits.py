"""Per-tenant rate limits over a real server: 429 with Retry-After in each API family's envelope, the
x-ratelimit-* headers, which requests spend which budget, two servers counting together in one Redis,
and Redis going away and coming back. Every test uses tenants of its own, so budgets in the machine's
shared Redis never meet."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from _support import assert_no_traceback, assert_openai_error, staging_files, upload

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = {**TUS, "Content-Type": "application/offset+octet-stream"}
CLASSES = ("uploads", "retrievals", "deletions")


def _missing_redis(reason: str) -> None:
    if os.environ.get("CAIRN_TEST_REQUIRE_REDIS") == "1":
        pytest.fail(f"Redis is required (CAIRN_TEST_REQUIRE_REDIS=1) but {reason}")
    pytest.skip(reason)


def _answers_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """A redis-server of this test's own, which it may stop and start again on the same port."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self.process = subprocess.Popen(
            [*command, "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _answers_ping("127.0.0.1", self.port):
            assert self.process.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        _missing_redis("redis-server is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = RedisServer(port, tmp_path)
    server.start()
    yield server
    server.stop()


def spent(response: httpx.Response) -> set[str]:
    """The route classes whose budget the response reports."""
    return {kind for kind in CLASSES if f"x-ratelimit-limit-{kind}" in response.headers}


def budget(response: httpx.Response, kind: str) -> tuple[int, int, int]:
    """(limit, remaining, reset) of one class, as the headers say."""
    limit, remaining, reset = (
        int(response.headers[f"x-ratelimit-{part}-{kind}"]) for part in ("limit", "remaining", "reset")
    )
    return limit, remaining, reset


@pytest.fixture(params=["in-process", "redis"])
def limiter_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Rate limits on, in process or in the machine's Redis."""
    if request.param == "in-process":
        return {"rate_limits": True}
    return {"rate_limits": True, "redis_url": request.getfixturevalue("shared_redis")}


def test_retrievals_past_the_budget_are_429_with_retry_after(make_server, limiter_settings):
    live = make_server(rate_limit_retrievals=5, **limiter_settings)
    tenant = live.new_tenant()
    with live.client(tenant) as client:
        file_id = upload(client, b"hello")["id"]
        for remaining in (4, 3, 2, 1, 0):
            response = client.get(f"/v1/files/{file_id}")
            assert response.status_code == 200, response.text
            assert spent(response) == {"retrievals"}
            limit, left, reset = budget(response, "retrievals")
            assert (limit, left) == (5, remaining) and 1 <= reset <= 60

        refused = client.get(f"/v1/files/{file_id}/content")
        error = assert_openai_error(refused, 429, code="rate_limit_exceeded")
        assert error["type"] == "rate_limit_error" and "5 per minute" in error["message"]
        assert 1 <= int(refused.headers["retry-after"]) <= 12  # one request's share of the minute
        assert budget(refused, "retrievals")[:2] == (5, 0)

        for path in ("/health", "/v1/health", "/v1/version", "/v1/models"):  # not limited
            response = client.get(path)
            assert response.status_code == 200 and spent(response) == set(), path
        assert client.delete(f"/v1/files/{file_id}").status_code == 200  # another budget
    with live.client(live.new_tenant()) as other:  # another tenant
        assert other.get("/v1/files").status_code == 200


def test_the_openai_client_sees_a_rate_limit_error(make_server):
    live = make_server(rate_limits=True, rate_limit_retrievals=1)
    tenant = live.new_tenant()
    with openai.OpenAI(base_url=live.url + "/v1", api_key=tenant.key, max_retries=0, timeout=30) as client:
        assert client.files.list().data == []
        with pytest.raises(openai.RateLimitError) as refused:
            client.files.list()
    assert refused.value.status_code == 429 and refused.value.code == "rate_limit_exceeded"
    assert refused.value.body["type"] == "rate_limit_error"  # type: ignore[index]
    assert 55 <= int(refused.value.response.headers["retry-after"]) <= 60  # 1 a minute: about a minute


def test_switched_off_or_at_zero_nothing_is_limited(make_server):
    off = make_server()  # the test servers' default: CAIRN_RATE_LIMITS=false
    with off.client(off.new_tenant()) as client:
        assert spent(client.get("/v1/files")) == set()
    live = make_server(rate_limits=True, rate_limit_uploads=0, rate_limit_retrievals=1)
    with live.client(live.new_tenant()) as client:
        for name in ("a", "b", "c"):
            created = client.post("/v1/files", data={"purpose": "assistants"}, files={"file": (name, b"x")})
            assert created.status_code == 200 and spent(created) == set()
        assert spent(client.get("/v1/files")) == {"retrievals"}


def test_a_refused_upload_stores_nothing(make_server):
    live = make_server(rate_limits=True, rate_limit_uploads=2)
    tenant = live.new_tenant()
    with live.client(tenant) as client:
        first = client.post("/v1/files", data={"purpose": "assistants"}, files={"file": ("a.txt", b"a")})
        assert budget(first, "uploads")[:2] == (2, 1)
        upload(client, b"b")
        refused = client.post(
            "/v1/files", data={"purpose": "assistants"}, files={"file": ("c.bin", os.urandom(1 << 20))}
        )
        assert_openai_error(refused, 429, code="rate_limit_exceeded")
        assert budget(refused, "uploads")[:2] == (2, 0)
        assert_openai_error(
            client.post("/v1/artifacts", json={"key": "k", "mime_type": "text/plain", "size": 1}), 429
        )
        assert len(client.get("/v1/files").json()["data"]) == 2
        assert client.get("/v1/artifacts").json()["data"] == []
    assert staging_files(live.settings.storage.data_dir) == []
    with live.client(live.new_tenant()) as other:
        upload(other, b"another tenant, another budget")


def test_each_kind_of_request_spends_its_own_budget(make_server):
    live = make_server(rate_limits=True)
    tenant = live.new_tenant()
    with live.client(tenant) as client:
        file_id = upload(client, b"x")["id"]
        assert spent(client.get("/v1/files")) == {"retrievals"}
        assert spent(client.head(f"/v1/files/{file_id}/content")) == {"retrievals"}
        assert spent(client.get(f"/v1/openai/v1/files/{file_id}")) == {"retrievals"}
        assert spent(client.delete(f"/v1/files/{file_id}")) == {"deletions"}

        created = client.post(
            "/v1/uploads",
            json={"bytes": 1, "filename": "a.txt", "mime_type": "text/plain", "purpose": "assistants"},
        )
        assert spent(created) == {"uploads"}
        part = client.post(f"/v1/uploads/{created.json()['id']}/parts", files={"data": ("p", b"1")})
        assert part.status_code == 200 and spent(part) == set()
        assert spent(client.post(f"/v1/uploads/{created.json()['id']}/cancel")) == {"deletions"}

        session = client.post("/v1/artifacts", json={"key": "a", "mime_type": "text/plain", "size": 2})
        assert spent(session) == {"uploads"}
        assert spent(client.post(session.json()["uri"], content=b"a")) == set()  # continues an upload
        assert spent(client.get(session.json()["uri"])) == {"retrievals"}
        assert spent(client.delete(session.json()["uri"])) == {"deletions"}
        assert spent(client.post("/v1/artifacts/bulk", json={"artifacts": [{"key": "a"}]})) == {"deletions"}
        assert spent(client.get("/v1/buckets")) == {"retrievals"}

        tus = client.post("/v1/tus/", headers={**TUS, "Upload-Length": "2"})
        assert tus.status_code == 201 and spent(tus) == {"uploads"}
        url = tus.headers["location"]
        assert spent(client.head(url, headers=TUS)) == {"retrievals"}
        assert (
            spent(client.patch(url, content=b"a", headers={**OFFSET_STREAM, "Upload-Offset": "0"})) == set()
        )
        override = {**OFFSET_STREAM, "Upload-Offset": "1", "X-HTTP-Method-Override": "PATCH"}
        assert spent(client.post(url, content=b"b", headers=override)) == set()
        second = client.post("/v1/tus/", headers={**TUS, "Upload-Length": "2"}).headers["location"]
        terminated = client.post(second, headers={**TUS, "X-HTTP-Method-Override": "DELETE"})
        assert terminated.status_code == 204 and spent(terminated) == {"deletions"}
        assert spent(client.options("/v1/tus/")) == set()  # discovery is not limited

        uploaded = client.post("/api/v1/files/upload", files={"file": ("w.txt", b"w")})
        assert uploaded.status_code == 200 and spent(uploaded) == {"uploads"}
        assert spent(client.get("/api/v1/files")) == {"retrievals"}


def test_a_method_override_elsewhere_does_not_move_the_charge(make_server):
    """Only the tus route that honours X-HTTP-Method-Override is charged by it: anywhere else a client
    cannot pay for an upload out of its deletions budget."""
    live = make_server(rate_limits=True, rate_limit_uploads=1)
    with live.client(live.new_tenant()) as client:
        upload(client, b"a")
        refused = client.post(
            "/v1/files",
            data={"purpose": "assistants"},
            files={"file": ("b.txt", b"b")},
            headers={"X-HTTP-Method-Override": "DELETE"},
        )
        assert_openai_error(refused, 429)
        assert spent(refused) == {"uploads"}


def test_429_speaks_each_family_envelope(make_server):
    live = make_server(rate_limits=True, rate_limit_retrievals=1, rate_limit_uploads=1)
    with live.client(live.new_tenant()) as client:
        assert client.get("/v1/buckets").status_code == 200
        url = client.post("/v1/tus/", headers={**TUS, "Upload-Length": "2"}).headers["location"]

        tus = client.post("/v1/tus/", headers={**TUS, "Upload-Length": "2"})
        assert tus.status_code == 429 and tus.headers["tus-resumable"] == "1.0.0"
        assert tus.headers["content-type"].startswith("text/plain") and "per minute" in tus.text
        assert int(tus.headers["retry-after"]) >= 1 and spent(tus) == {"uploads"}
        continued = client.patch(url, content=b"ab", headers={**OFFSET_STREAM, "Upload-Offset": "0"})
        assert continued.status_code == 204  # bytes for an upload already started are not charged
        assert client.head(url, headers=TUS).status_code == 429

        workspace = client.get("/api/v1/files")
        assert workspace.status_code == 429 and int(workspace.headers["retry-after"]) >= 1
        body = workspace.json()
        assert body["success"] is False and body["error"]["code"] == "rate_limit_exceeded"
        assert_no_traceback(workspace.text)

        for path in ("/v1/buckets", "/v1/artifacts", "/v1/openai/v1/files"):
            error = assert_openai_error(client.get(path), 429, code="rate_limit_exceeded")
            assert error["type"] == "rate_limit_error"


def test_requests_without_a_tenant_are_answered_by_their_route(make_server):
    """No key, no tenant to charge: the route refuses the request as it would without limits."""
    live = make_server(rate_limits=True, rate_limit_retrievals=1, rate_limit_uploads=1)
    with live.client() as anonymous:
        for key in (None, "cairn-not-a-key", None):
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            response = anonymous.get("/v1/files", headers=headers)
            assert_openai_error(response, 401)
            assert spent(response) == set()
        wrong_version = anonymous.post("/v1/tus/", headers={"Upload-Length": "3"})
        assert wrong_version.status_code == 412  # tus checks its version before the key, limits or not


def test_two_servers_sharing_redis_count_together(make_server, shared_redis):
    first, second = (
        make_server(rate_limits=True, rate_limit_retrievals=4, redis_url=shared_redis) for _ in range(2)
    )
    tenant = first.new_tenant()  # one database behind both: the key works on either
    with first.client(tenant) as a, second.client(tenant) as b:
        remaining = [budget(server.get("/v1/files"), "retrievals")[1] for server in (a, b, a, b)]
        assert remaining == [3, 2, 1, 0]
        assert_openai_error(a.get("/v1/files"), 429, code="rate_limit_exceeded")
        assert_openai_error(b.get("/v1/files"), 429, code="rate_limit_exceeded")
        assert a.get("/health", params={"deep": 1}).json()["checks"]["redis"] == "ok"


def test_redis_down_is_503_in_each_envelope_then_recovers(make_server, private_redis):
    live = make_server(rate_limits=True, redis_url=private_redis.url)
    with live.client(live.new_tenant()) as client:
        assert client.get("/v1/files").status_code == 200
        assert client.get("/health", params={"deep": 1}).json()["checks"]["redis"] == "ok"

        private_redis.stop()
        assert_openai_error(client.get("/v1/files"), 503, code="unavailable")
        refused = client.post("/v1/files", data={"purpose": "assistants"}, files={"file": ("a.txt", b"a")})
        assert "Redis" in assert_openai_error(refused, 503, code="unavailable")["message"]
        tus = client.head("/v1/tus/some-upload", headers=TUS)
        assert tus.status_code == 503 and tus.headers["tus-resumable"] == "1.0.0"
        workspace = client.get("/api/v1/files")
        assert workspace.status_code == 503 and workspace.json()["error"]["code"] == "unavailable"
        assert client.get("/health").status_code == 200
        deep = client.get("/health", params={"deep": 1})
        assert deep.status_code == 503 and deep.json()["checks"]["metadata"] == "ok"
        assert "Redis" in deep.json()["checks"]["redis"]

        private_redis.start()  # the same port; Cairn is not restarted
        recovered = client.get("/v1/files")
        assert (
            recovered.status_code == 200 and recovered.json()["data"] == []
        )  # the refused upload left nothing
        assert budget(recovered, "retrievals")[:2] == (1000, 999)  # a restarted Redis starts budgets afresh
        healthy = client.get("/health", params={"deep": 1})
        assert healthy.status_code == 200 and healthy.json()["checks"]["redis"] == "ok"
