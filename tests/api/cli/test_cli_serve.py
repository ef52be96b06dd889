"""`cairn serve` and `cairn keys` as a user runs them: real processes, real ports."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from _support import CAIRN, ServeProcesses, free_port


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CAIRN + args, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def cli_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {**os.environ, "CAIRN_DATA_DIR": str(tmp_path / "data"), "CAIRN_DATABASE_URL": database_url}


@pytest.fixture
def serve(cli_env: dict[str, str], tmp_path: Path) -> Iterator:
    processes = ServeProcesses(cli_env, tmp_path / "serve.log")

    def start(*args: str) -> tuple[str, subprocess.Popen[bytes]]:
        url, proc = processes.start(*args)
        assert f"cairn.ready url={url} " in processes.log.read_text()
        return url, proc

    yield start
    processes.stop_all()


def test_keys_create_list_revoke(cli_env: dict[str, str]) -> None:
    created = run(["keys", "create", "--tenant", "acme"], cli_env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("cairn-")
    key_id = key.split("-")[1]
    listed = run(["keys", "list"], cli_env)
    assert f"{key_id}\tacme\tactive" in listed.stdout
    assert key not in listed.stdout
    assert run(["keys", "revoke", key_id], cli_env).returncode == 0
    assert f"{key_id}\tacme\trevoked" in run(["keys", "list"], cli_env).stdout
    assert run(["keys", "revoke", key_id], cli_env).returncode == 1
    assert run(["keys", "create", "--tenant", "bad/name"], cli_env).returncode == 1


def test_serve_refuses_a_public_address_without_keys(cli_env: dict[str, str]) -> None:
    result = run(["serve", "--host", "0.0.0.0", "--port", str(free_port())], cli_env)
    assert result.returncode == 2
    assert "Refusing to listen" in result.stderr


def test_serve_logs_its_url_and_answers_health(serve, cli_env: dict[str, str]) -> None:
    url, _ = serve()
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{url}/v1/version").json()["version"]
    assert httpx.get(f"{url}/health", params={"deep": 1}).json()["checks"] == {
        "metadata": "ok",
        "blobs": "ok",
    }


def test_a_port_in_use_fails_before_ready_is_logged(cli_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run(["serve", "--port", str(taken.getsockname()[1])], cli_env)
    assert result.returncode != 0
    assert "address already in use" in result.stderr.lower()
    assert "cairn.ready" not in result.stderr


def test_an_ipv6_url_is_logged_in_brackets(cli_env: dict[str, str], tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    port = free_port()
    log = tmp_path / "serve6.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [*CAIRN, "serve", "--host", "::1", "--port", str(port)], env=cli_env, stderr=sink
        )
    try:
        deadline = time.monotonic() + 60
        while "cairn.ready" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        assert f"cairn.ready url=http://[::1]:{port} " in log.read_text()
        assert httpx.get(f"http://[::1]:{port}/health").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_several_workers_share_one_data_dir(serve, cli_env: dict[str, str]) -> None:
    key = run(["keys", "create", "--tenant", "team"], cli_env).stdout.strip().splitlines()[-1]
    url, _ = serve("--workers", "2")
    headers = {"Authorization": f"Bearer {key}"}
    payloads = [os.urandom(300_000 + i) for i in range(24)]

    def upload(data: bytes) -> dict:
        # a fresh connection each time so the kernel spreads them over both workers
        response = httpx.post(
            f"{url}/v1/files",
            headers=headers,
            files={"file": ("x.bin", data)},
            data={"purpose": "batch"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(upload, payloads))
    listed = httpx.get(f"{url}/v1/files", headers=headers, params={"limit": 100}).json()
    assert {f["id"] for f in listed["data"]} == {f["id"] for f in created}
    for meta, data in zip(created, payloads, strict=True):
        body = httpx.get(f"{url}/v1/files/{meta['id']}/content", headers=headers).content
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


def test_a_crash_mid_upload_leaves_no_object_and_the_restarted_server_works(
    serve, cli_env: dict[str, str]
) -> None:
    url, proc = serve()
    port = int(url.rsplit(":", 1)[1])
    boundary = "crashtest"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="half.bin"\r\n\r\n'
    ).encode()
    declared = len(head) + 8_000_000 + len(f"\r\n--{boundary}--\r\n")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            (
                f"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {declared}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
            ).encode()
            + head
            + os.urandom(4_000_000)
        )
        staging = Path(cli_env["CAIRN_DATA_DIR"]) / "staging"
        deadline = time.monotonic() + 30
        while not any(staging.iterdir()):  # the server is writing the upload
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    url, _ = serve()
    assert httpx.get(f"{url}/v1/files").json()["data"] == []
    blobs = Path(cli_env["CAIRN_DATA_DIR"]) / "blobs"
    assert [p for p in blobs.rglob("*") if p.is_file()] == []
    created = httpx.post(f"{url}/v1/files", files={"file": ("ok.txt", b"ok")}, data={"purpose": "batch"})
    assert created.status_code == 200
    assert httpx.get(f"{url}/v1/files/{created.json()['id']}/content").content == b"ok"
