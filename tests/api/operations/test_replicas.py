"""Two `cairn serve` replicas sharing PostgreSQL, SeaweedFS and Redis, as an operator runs them: an
upload session started on one continues on the other after the first is killed mid-append, and the
rate limit counts requests to both together. No replica keeps state the other needs."""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support import CAIRN, ServeProcesses

TUS = {"Tus-Resumable": "1.0.0"}
MIB = 1 << 20


@pytest.fixture
def scaled_env(tmp_path: Path, postgres_url: str, s3_bucket: Any, shared_redis: str) -> dict[str, str]:
    return {
        **os.environ,
        "CAIRN_DATABASE_URL": postgres_url,
        "CAIRN_BLOB_STORE": f"s3://{s3_bucket.name}/cairn",
        "CAIRN_S3_ENDPOINT_URL": s3_bucket.endpoint,
        "CAIRN_S3_REGION": s3_bucket.region,
        "CAIRN_S3_ACCESS_KEY_ID": s3_bucket.access_key_id,
        "CAIRN_S3_SECRET_ACCESS_KEY": s3_bucket.secret_access_key,
        "CAIRN_REDIS_URL": shared_redis,
        "CAIRN_RATE_LIMIT_UPLOADS": "5",
        "CAIRN_DATA_DIR": str(tmp_path / "unused"),  # S3 holds every byte: nothing may land here
    }


@pytest.fixture
def replica(scaled_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., tuple[str, Any]]]:
    processes = ServeProcesses(scaled_env, tmp_path / "replicas.log")
    yield lambda port=None: processes.start(port=port)
    processes.stop_all()


def _key(env: dict[str, str], tenant: str) -> dict[str, str]:
    created = subprocess.run(
        [*CAIRN, "keys", "create", "--tenant", tenant], env=env, capture_output=True, text=True, timeout=60
    )
    assert created.returncode == 0, created.stderr
    return {"Authorization": f"Bearer {created.stdout.strip().splitlines()[-1]}"}


def test_a_session_continues_on_the_other_replica_after_the_first_is_killed(
    replica, scaled_env: dict[str, str]
) -> None:
    auth = _key(scaled_env, f"t{secrets.token_hex(4)}")
    a, proc_a = replica()
    b, _ = replica()
    data = os.urandom(20 * MIB + 12345)
    created = httpx.post(f"{a}/v1/tus/", headers={**auth, **TUS, "Upload-Length": str(len(data))}, timeout=30)
    assert created.status_code == 201, created.text
    path = created.headers["Location"].split("://", 1)[-1]
    path = path[path.index("/v1/tus/") :]
    patch = {**auth, **TUS, "Content-Type": "application/offset+octet-stream"}
    first = httpx.patch(f"{a}{path}", headers={**patch, "Upload-Offset": "0"}, content=data[: 5 * MIB])
    assert first.status_code == 204 and first.headers["Upload-Offset"] == str(5 * MIB)

    # The second half goes to A in a request A never finishes: it is killed while bytes stream in.
    with socket.create_connection(("127.0.0.1", int(a.rsplit(":", 1)[1]))) as sock:
        head = "".join(f"{name}: {value}\r\n" for name, value in patch.items())
        sock.sendall(
            f"PATCH {path} HTTP/1.1\r\nHost: a\r\n{head}Upload-Offset: {5 * MIB}\r\n"
            f"Content-Length: {10 * MIB}\r\n\r\n".encode()
            + data[5 * MIB : 14 * MIB]
        )
        time.sleep(1.0)  # A has sent whole parts to S3 by now, and recorded none of them
        proc_a.send_signal(signal.SIGKILL)
        proc_a.wait(timeout=30)

    head_b = httpx.head(f"{b}{path}", headers={**auth, **TUS})
    assert head_b.status_code == 200
    offset = int(head_b.headers["Upload-Offset"])
    assert offset == 5 * MIB  # acknowledged bytes only; nothing of the killed request counts
    rest = httpx.patch(
        f"{b}{path}", headers={**patch, "Upload-Offset": str(offset)}, content=data[offset:], timeout=120
    )
    assert rest.status_code == 204, rest.text
    file_id = rest.headers["Cairn-File-Id"]

    a, _ = replica()  # A again, as a fresh process: it needs nothing the old one had
    for url in (a, b):
        listed = httpx.get(f"{url}/v1/files", headers=auth).json()["data"]
        assert [item["id"] for item in listed] == [file_id]
        content = httpx.get(f"{url}/v1/files/{file_id}/content", headers=auth, timeout=60).content
        assert hashlib.sha256(content).digest() == hashlib.sha256(data).digest()
    assert httpx.delete(f"{a}/v1/files/{file_id}", headers=auth).status_code == 200
    assert httpx.get(f"{b}/v1/files/{file_id}", headers=auth).status_code == 404
    assert not Path(scaled_env["CAIRN_DATA_DIR"], "sessions").exists()


def test_the_rate_limit_counts_both_replicas_together(replica, scaled_env: dict[str, str]) -> None:
    auth = _key(scaled_env, f"t{secrets.token_hex(4)}")
    a, _ = replica()
    b, _ = replica()
    statuses = [
        httpx.post(
            f"{url}/v1/files", headers=auth, files={"file": ("x.txt", b"x")}, data={"purpose": "batch"}
        ).status_code
        for url in (a, b, a, b, a, b)
    ]
    assert statuses == [200] * 5 + [429]
