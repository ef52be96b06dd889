"""`cairn migrate` as an operator runs it: an embedded install (SQLite and blobs in its data directory)
filled through the HTTP faces, copied by a real `python -m cairn migrate` process into the test's
backend (PostgreSQL with S3 on SeaweedFS, or with a local directory), then served from there: the same
listings, the same bytes, the same keys; run again, it copies nothing twice; stopped, it resumes."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from cairn.settings import Settings

CAIRN = [sys.executable, "-m", "cairn"]
MiB = 1 << 20
WORKSPACE_FOLDERS = ("", "team", "team/docs")
IN_TWO_HOURS = {"expires_after[anchor]": "created_at", "expires_after[seconds]": "7200"}
TO_S3_AND_TO_LOCAL = pytest.mark.parametrize("backend", ["postgres+s3", "postgres+local"], indirect=True)


def cairn(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        CAIRN + args, env=env or dict(os.environ), capture_output=True, text=True, timeout=300
    )


def store_env(settings: Settings) -> dict[str, str]:
    """The environment naming the stores of ``settings``, as an operator sets it for the target."""
    names = ("data_dir", "database_url", "blob_store", "s3_endpoint_url", "s3_region", "s3_access_key_id")
    stores = settings.storage
    env = {f"CAIRN_{name.upper()}": str(getattr(stores, name)) for name in names if getattr(stores, name)}
    if settings.storage.s3_secret_access_key is not None:
        env["CAIRN_S3_SECRET_ACCESS_KEY"] = settings.storage.s3_secret_access_key.get_secret_value()
    return {**os.environ, **env}


@dataclass
class Installs:
    embedded: Any  # a running server on SQLite and blobs in its data directory
    target: Any  # a stopped server on the test's backend (its stores prepared)
    served: list[Any] = field(default_factory=list)

    @property
    def source_dir(self) -> Path:
        return self.embedded.settings.storage.data_dir

    def migrate(self, *extra: str) -> subprocess.CompletedProcess[str]:
        args = ["migrate", "--from-data-dir", str(self.source_dir), *extra]
        return cairn(args, store_env(self.target.settings))

    def serve_target(self) -> Any:
        live = self.target.restarted()
        self.served.append(live)
        return live


@pytest.fixture
def installs(make_server) -> Iterator[Installs]:
    found = Installs(make_server(database_url=None, blob_store=None), make_server(keyed=False))
    found.target.stop()
    yield found
    for live in found.served:
        live.stop()


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put_file(http: httpx.Client, name: str, data: bytes, **fields: str) -> str:
    files = {"file": (name, data)}
    return ok(http.post("/v1/files", files=files, data={"purpose": "assistants", **fields}))["id"]


def start_bucket_upload(http: httpx.Client, bucket: str, key: str, size: int) -> dict[str, Any]:
    return ok(
        http.post("/v1/buckets", json={"bucket": bucket, "key": key, "size": size, "mime_type": "text/plain"})
    )


def put_key(http: httpx.Client, bucket: str, key: str, data: bytes) -> str:
    session = start_bucket_upload(http, bucket, key, len(data))
    done = ok(http.post(session["url"], content=data, headers={"Upload-Offset": "0"}))
    return done["url"].split("/")[3]


def put_in_parts(http: httpx.Client, pieces: list[bytes]) -> str:
    """An OpenAI upload completed from parts: on the local disk, a blob of segments."""
    body = {
        "bytes": sum(map(len, pieces)),
        "filename": "p.jsonl",
        "mime_type": "text/jsonl",
        "purpose": "batch",
    }
    upload = ok(http.post("/v1/uploads", json=body))
    parts = [ok(http.post(f"/v1/uploads/{upload['id']}/parts", files={"data": ("b", p)})) for p in pieces]
    done = ok(http.post(f"/v1/uploads/{upload['id']}/complete", json={"part_ids": [p["id"] for p in parts]}))
    return done["file"]["id"]


def fill(http: httpx.Client) -> dict[str, bytes]:
    """Objects through every face, the bytes of each by object id."""
    stored = {
        put_file(http, "a.txt", b"alpha"): b"alpha",
        put_file(http, "ünïcödé-名前.bin", data := os.urandom(1000)): data,
        put_file(http, "big.bin", big := os.urandom(9 * MiB + 1234)): big,  # over one part: S3 multipart
        put_file(http, "later.txt", b"x", **IN_TWO_HOURS): b"x",
        put_key(http, "models", "données/résumé ü.txt", "é".encode() * 40): "é".encode() * 40,
        put_key(http, "models", "v1/weights.bin", weights := os.urandom(3000)): weights,
        put_in_parts(http, pieces := [os.urandom(2 * MiB), os.urandom(MiB + 3)]): b"".join(pieces),
    }
    upload = http.post(
        "/api/v1/files/upload", files={"file": ("notes.md", b"# notes")}, data={"dir": "team/docs"}
    )
    assert ok(upload)["success"] is True
    stored[ok(http.get("/v1/buckets/workspace/team/docs/notes.md"))["url"].split("/")[3]] = b"# notes"
    return stored


def snapshot(http: httpx.Client, folders: tuple[str, ...] = ("",)) -> dict[str, Any]:
    """What a client sees: the listings of every face (of the workspace: these folders), and the sha256
    of every object's bytes."""
    seen: dict[str, Any] = {"files": ok(http.get("/v1/files")), "buckets": ok(http.get("/v1/buckets"))}
    seen["workspace"] = [ok(http.get("/api/v1/files", params={"path": p})) for p in folders]
    urls = [f"/v1/files/{f['id']}/content" for f in seen["files"]["data"]]
    for bucket in seen["buckets"]["data"]:
        listing = seen[f"bucket {bucket['name']}"] = ok(http.get(f"/v1/buckets/{bucket['name']}"))
        urls += [item["url"] for item in listing["data"]]
    seen["sha256"] = {url: sha256(http.get(url).content) for url in urls}
    return seen


def source_sql(data_dir: Path, statement: str, *params: Any) -> list[Any]:
    with contextlib.closing(sqlite3.connect(data_dir / "cairn.db")) as db, db:
        return db.execute(statement, params).fetchall()


def live_objects(data_dir: Path) -> list[str]:
    query = "SELECT id FROM objects WHERE expires_at IS NULL OR expires_at > ? ORDER BY id"
    return [row[0] for row in source_sql(data_dir, query, time.time())]


def revoke(data_dir: Path, tenant: Any) -> None:
    revoked = cairn(["keys", "revoke", tenant.key.split("-")[1], "--data-dir", str(data_dir)])
    assert revoked.returncode == 0, revoked.stderr


def key_states(settings: Settings) -> list[tuple[str, ...]]:
    """(id, tenant, active or revoked) of every key, as `cairn keys list` shows them for these stores."""
    listed = cairn(["keys", "list"], store_env(settings))
    assert listed.returncode == 0, listed.stderr
    return sorted(tuple(line.split("\t")[:3]) for line in listed.stdout.splitlines())


@TO_S3_AND_TO_LOCAL
def test_everything_moves_keys_keep_working_and_a_second_run_copies_nothing(installs):
    tenant, former = installs.embedded.new_tenant("acme"), installs.embedded.new_tenant("former")
    late = installs.embedded.new_tenant("late")  # revoked between two runs
    with installs.embedded.client(tenant) as http:
        stored = fill(http)
        pending = start_bucket_upload(http, "models", "unfinished.bin", 5)
        expired = put_file(http, "old.txt", b"old")
        expire_now = "UPDATE objects SET expires_at = ? WHERE id = ?"
        source_sql(installs.source_dir, expire_now, int(time.time()) - 1, expired)
        before = snapshot(http, WORKSPACE_FOLDERS)  # without the expired object, not yet reclaimed
    revoke(installs.source_dir, former)
    installs.embedded.stop()
    assert set(before["sha256"].values()) >= {sha256(data) for data in stored.values()}
    live = live_objects(installs.source_dir)
    assert set(stored) <= set(live) and expired not in live

    first = installs.migrate()
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"{len(live)} live objects" in first.stdout
    assert "and 4 API keys; already in the target: 0 objects, 0 API keys." in first.stdout
    assert "1 pending upload session(s) not copied" in first.stderr

    target = installs.serve_target()
    with target.client(tenant) as http:
        assert snapshot(http, WORKSPACE_FOLDERS) == before
        assert http.get(f"/v1/files/{expired}").status_code == 404
        assert http.get(pending["url"]).status_code == 404
    with target.client(former) as http:
        assert http.get("/v1/files").status_code == 401
    keys = key_states(target.settings)
    assert keys == key_states(installs.embedded.settings)
    assert {key[1:] for key in keys} >= {("acme", "active"), ("former", "revoked"), ("late", "active")}

    revoke(installs.source_dir, late)
    again = installs.migrate()
    assert again.returncode == 0, again.stdout + again.stderr
    copied = (
        f"Copied 0 objects (0 bytes) and 0 API keys; already in the target: {len(live)} objects, 4 API keys."
    )
    assert copied in again.stdout and "Revoked in the target too: 1 API keys" in again.stdout
    assert ("late", "revoked") in {key[1:] for key in key_states(target.settings)}
    with target.client(tenant) as http:
        assert snapshot(http, WORKSPACE_FOLDERS) == before


async def refuse_object_rows_beyond(database_url: str, rows: int | None) -> None:
    """Make the target database refuse a new object row once it holds ``rows`` (None: accept again)."""
    conn = await asyncpg.connect(database_url)
    try:
        if rows is None:
            await conn.execute("DROP TRIGGER refuse_rows ON objects")
            return
        await conn.execute(f"""
            CREATE FUNCTION refuse_rows() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
                IF (SELECT count(*) FROM objects) >= {rows} THEN
                    RAISE EXCEPTION 'no room for more rows';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_rows BEFORE INSERT ON objects FOR EACH ROW EXECUTE FUNCTION refuse_rows();
        """)
    finally:
        await conn.close()


async def target_object_ids(database_url: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        return [row["id"] for row in await conn.fetch("SELECT id FROM objects ORDER BY id")]
    finally:
        await conn.close()


@pytest.mark.parametrize("backend", ["postgres+s3"], indirect=True)
def test_a_stopped_migration_resumes_and_never_leaves_a_row_without_bytes(installs, backend):
    tenant = installs.embedded.new_tenant()
    with installs.embedded.client(tenant) as http:
        for i in range(3):
            put_file(http, f"small-{i}.bin", os.urandom(100 + i))
        big = put_file(http, "big.bin", os.urandom(9 * MiB + 5))
        for i in range(2):
            put_file(http, f"later-{i}.bin", os.urandom(200 + i))
        before = snapshot(http)
    installs.embedded.stop()
    order = live_objects(installs.source_dir)
    copied_first = order.index(big)  # the target refuses the big object's row, after its bytes went up
    asyncio.run(refuse_object_rows_beyond(backend.database_url, copied_first))

    stopped = installs.migrate("--jobs", "1")
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    assert "the migration stopped" in stopped.stderr and "no room for more rows" in stopped.stderr
    assert "Run the same command again to resume." in stopped.stderr
    assert asyncio.run(target_object_ids(backend.database_url)) == order[:copied_first]

    asyncio.run(refuse_object_rows_beyond(backend.database_url, None))
    resumed = installs.migrate("--jobs", "1")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"Copied {len(order) - copied_first} objects" in resumed.stdout
    assert f"already in the target: {copied_first} objects" in resumed.stdout
    with installs.serve_target().client(tenant) as http:
        assert snapshot(http) == before
    # The big object's first copy (bytes committed, row refused) was replaced, not left behind.
    bucket, prefix = backend.blob_settings["blob_store"].removeprefix("s3://").split("/", 1)
    keys = [o["Key"] for o in backend.s3_client.list_objects_v2(Bucket=bucket)["Contents"]]
    pointer = backend.s3_client.head_object(Bucket=bucket, Key=f"{prefix}/blobs/{big}")
    assert [k for k in keys if k.startswith(f"{prefix}/data/")] == [pointer["Metadata"]["cairn-data"]]
    assert sorted(k for k in keys if k.startswith(f"{prefix}/blobs/")) == sorted(
        f"{prefix}/blobs/{i}" for i in order
    )


def blob_path(data_dir: Path, object_id: str) -> Path:
    return data_dir / "blobs" / object_id[-2:] / object_id[-4:-2] / object_id


@pytest.mark.parametrize("backend", ["sqlite+local"], indirect=True)
def test_objects_with_wrong_bytes_or_a_taken_key_are_reported_and_not_copied(installs):
    tenant = installs.embedded.new_tenant("acme")
    with installs.embedded.client(tenant) as http:
        kept = put_file(http, "kept.txt", b"kept")
        changed = put_file(http, "changed.txt", b"original")
        lost = put_file(http, "lost.txt", b"lost")
        taken = put_key(http, "models", "shared/report.txt", b"from the embedded install")
    installs.embedded.stop()
    blob_path(installs.source_dir, changed).write_bytes(b"tampered")  # same size, other bytes
    blob_path(installs.source_dir, lost).unlink()
    early = installs.serve_target()  # the new install already in use: its own object at that key
    with early.client(early.new_tenant("acme")) as http:
        put_key(http, "models", "shared/report.txt", b"from the new install")
    early.stop()

    run = installs.migrate()
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"{changed} (acme/files/{changed}) not copied: its bytes do not match the sha256" in run.stderr
    assert f"{lost} (acme/files/{lost}) not copied: its bytes cannot be read" in run.stderr
    assert f"{taken} (acme/models/shared/report.txt) not copied: the target holds another" in run.stderr
    assert "Copied 1 objects" in run.stdout and "error: 3 objects were not copied" in run.stderr
    with installs.serve_target().client(tenant) as http:
        assert [f["id"] for f in ok(http.get("/v1/files"))["data"]] == [kept]
        assert http.get(f"/v1/files/{kept}/content").content == b"kept"
        report = ok(http.get("/v1/buckets/models/shared/report.txt"))
        assert http.get(report["url"]).content == b"from the new install"
    target_dir = installs.target.settings.storage.data_dir
    assert not any(blob_path(target_dir, i).exists() for i in (changed, lost, taken))


def embedded_install(data_dir: Path) -> None:
    created = cairn(["keys", "create", "--tenant", "acme", "--data-dir", str(data_dir)])
    assert created.returncode == 0, created.stderr


def test_what_is_not_an_embedded_install_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    refused = cairn(["migrate", "--from-data-dir", str(tmp_path / "empty")])
    assert refused.returncode == 2 and "is not an embedded Cairn install" in refused.stderr
    assert not (tmp_path / "empty" / "cairn.db").exists()
    (tmp_path / "other").mkdir()
    with contextlib.closing(sqlite3.connect(tmp_path / "other" / "cairn.db")) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    refused = cairn(["migrate", "--from-data-dir", str(tmp_path / "other")])
    assert refused.returncode == 2 and "is not a Cairn database" in refused.stderr


def test_a_target_that_is_the_source_or_cannot_be_prepared_is_refused(tmp_path):
    source = tmp_path / "embedded"
    embedded_install(source)
    env = {**os.environ, "CAIRN_DATA_DIR": str(source)}
    itself = cairn(["migrate"], env)
    assert itself.returncode == 2 and "The target database is the source's own" in itself.stderr
    other_db = tmp_path / "other.db"
    env = {**env, "CAIRN_DATABASE_URL": f"sqlite:///{other_db}"}
    same_blobs = cairn(["migrate", "--from-data-dir", str(source)], env)
    assert same_blobs.returncode == 2 and "blobs would go to the source directory" in same_blobs.stderr
    assert not other_db.exists()
    other_db.write_bytes(b"not a database at all" * 100)
    env = {**env, "CAIRN_DATA_DIR": str(tmp_path / "scaled")}
    broken = cairn(["migrate", "--from-data-dir", str(source)], env)
    assert broken.returncode == 2 and "could not be prepared" in broken.stderr, broken.stderr
    assert "Traceback" not in broken.stderr


def test_a_second_migration_of_the_same_install_at_once_is_refused(tmp_path):
    source = tmp_path / "embedded"
    embedded_install(source)
    env = {**os.environ, "CAIRN_DATA_DIR": str(tmp_path / "new")}
    with open(source / "migrate.lock", "w") as held:  # as a running `cairn migrate` holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        refused = cairn(["migrate", "--from-data-dir", str(source)], env)
    assert refused.returncode == 2 and "Another 'cairn migrate' is running" in refused.stderr
    assert not (tmp_path / "new").exists()
    assert cairn(["migrate", "--from-data-dir", str(source)], env).returncode == 0
