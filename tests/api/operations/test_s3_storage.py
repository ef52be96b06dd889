"""Cairn on PostgreSQL + S3 (SeaweedFS) through HTTP: a large object streams up in parts and back down
by ranges, delete leaves the bucket empty, and a store that refuses Cairn's credentials is a 503
with the API's envelope, never a 500 or a half-stored object."""

from __future__ import annotations

import hashlib
import os

import pytest
from _support import assert_openai_error

pytestmark = pytest.mark.parametrize("backend", ["postgres+s3"], indirect=True)


def _bucket_keys(backend) -> list[str]:
    bucket = backend.blob_settings["blob_store"].removeprefix("s3://").split("/", 1)[0]
    listing = backend.s3_client.list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listing.get("Contents", [])]


def test_large_object_round_trips_by_ranges_and_delete_empties_the_bucket(backend, client):
    data = os.urandom(20 * 1024 * 1024 + 4321)  # three parts of a multipart upload
    created = client.post("/v1/files", files={"file": ("big.bin", data)}, data={"purpose": "assistants"})
    assert created.status_code == 200, created.text
    file_id = created.json()["id"]
    body = client.get(f"/v1/files/{file_id}/content")
    assert body.status_code == 200
    assert hashlib.sha256(body.content).hexdigest() == hashlib.sha256(data).hexdigest()
    start, end = 8 * 1024 * 1024 - 5, 8 * 1024 * 1024 + 5
    ranged = client.get(f"/v1/files/{file_id}/content", headers={"Range": f"bytes={start}-{end}"})
    assert ranged.status_code == 206
    assert ranged.content == data[start : end + 1]
    assert _bucket_keys(backend)
    assert client.delete(f"/v1/files/{file_id}").json()["deleted"] is True
    assert _bucket_keys(backend) == []


def test_refused_credentials_are_503_and_store_nothing(backend, make_server):
    live = make_server(s3_secret_access_key="not-the-secret")
    tenant = live.new_tenant()
    with live.client(tenant) as http:
        for size in (10, 9 * 1024 * 1024):  # one PutObject; a multipart upload
            refused = http.post(
                "/v1/files", files={"file": ("x.bin", os.urandom(size))}, data={"purpose": "assistants"}
            )
            assert_openai_error(refused, 503, code="unavailable")
        assert http.get("/v1/files").json()["data"] == []
    assert _bucket_keys(backend) == []
