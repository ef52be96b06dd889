"""A `cairn serve` killed (SIGKILL) while uploads stream in, as an operator meets it: the next start
removes the abandoned staging at once, however young, but never the staging of a process that is
alive, nor the bytes an upload session has staged (the session resumes after the restart)."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from _support import ServeProcesses, staging_files, wait_until

MIB = 1 << 20


@pytest.fixture
def data_dir(tmp_path: Path, backend) -> Path:
    if backend.blob_settings:
        pytest.skip("staging on S3 is a multipart upload, which S3 cannot tie to a live writer (D16)")
    return tmp_path / "data"


@pytest.fixture
def serve(
    data_dir: Path, database_url: str, tmp_path: Path
) -> Iterator[Callable[[], tuple[str, subprocess.Popen]]]:
    """Start `cairn serve` processes sharing one data directory and database (open mode, loopback)."""
    env = {**os.environ, "CAIRN_DATA_DIR": str(data_dir), "CAIRN_DATABASE_URL": database_url}
    processes = ServeProcesses(env, tmp_path / "serve.log")
    yield processes.start
    processes.stop_all()


def _stalled_request(url: str, head: str, body: bytes) -> socket.socket:
    """Send a request head and the first ``body`` bytes of a longer body, and keep the connection."""
    sock = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    sock.sendall(f"{head}Host: 127.0.0.1\r\n\r\n".encode() + body)
    return sock


def test_a_restart_after_a_kill_removes_abandoned_staging_at_once(serve, data_dir: Path) -> None:
    first, proc = serve()
    boundary = "crash"
    part_head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
    ).encode()
    declared = len(part_head) + 64 * MIB + len(f"\r\n--{boundary}--\r\n")
    upload = _stalled_request(
        first,
        f"POST /api/v1/files/upload HTTP/1.1\r\nContent-Length: {declared}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n",
        part_head + os.urandom(8 * MIB),
    )
    data = os.urandom(3 * MIB)
    session = httpx.post(
        f"{first}/v1/buckets",
        json={"bucket": "workspace", "key": "runs/out.bin", "mime_type": "a/b", "size": len(data)},
    ).json()
    acknowledged = httpx.post(f"{first}{session['url']}", content=data[:MIB])
    assert acknowledged.headers["upload-offset"] == str(MIB)
    append = _stalled_request(
        first,
        f"POST {session['url']} HTTP/1.1\r\nUpload-Offset: {MIB}\r\nContent-Length: {2 * MIB}\r\n",
        data[MIB : 2 * MIB],
    )
    with upload, append:
        assert wait_until(lambda: any(p.stat().st_size >= 4 * MIB for p in staging_files(data_dir)), 30)
        serve()  # another process on the same data directory starts, and sweeps
        time.sleep(1.0)
        assert any(p.stat().st_size >= 4 * MIB for p in staging_files(data_dir))  # the live upload's
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    restarted, _ = serve()
    assert wait_until(lambda: staging_files(data_dir) == [], timeout=5)  # not a minute, nor an hour
    assert httpx.get(f"{restarted}/api/v1/files").json()["items"] == []
    offset = int(httpx.get(f"{restarted}{session['url']}").json()["offset"])
    assert MIB <= offset <= 2 * MIB  # what the session staged survived: the upload resumes
    done = httpx.post(
        f"{restarted}{session['url']}", content=data[offset:], headers={"Upload-Offset": str(offset)}
    )
    assert done.status_code == 200, done.text
    content = httpx.get(f"{restarted}/api/v1/files/download", params={"path": "runs/out.bin"}).content
    assert hashlib.sha256(content).digest() == hashlib.sha256(data).digest()
