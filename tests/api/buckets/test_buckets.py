"""The Buckets API over a real server: upload sessions into named buckets, shared with Artifacts."""

from __future__ import annotations

import hashlib
import os
from urllib.parse import quote

import pytest
from _support import assert_openai_error


def start(client, bucket: str, key: str, size: int, mime_type: str = "application/octet-stream") -> dict:
    response = client.post(
        "/v1/buckets", json={"bucket": bucket, "key": key, "mime_type": mime_type, "size": size}
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_bucket_upload_in_chunks_then_get_list_delete(client):
    data = os.urandom(1_500_000)
    upload = start(client, "models", "llama/weights.bin", len(data))
    assert set(upload) == {"id", "url", "offset", "size"}
    assert upload["url"] == f"/v1/buckets/session:{upload['id']}" and upload["offset"] == 0
    first = client.post(upload["url"], content=data[:700_000], headers={"Upload-Offset": "0"})
    assert first.json() is None and first.headers["upload-offset"] == "700000"
    assert client.get(upload["url"]).json()["offset"] == 700_000
    done = client.post(upload["url"], content=data[700_000:], headers={"Upload-Offset": "700000"}).json()
    assert done["bucket"] == "models" and done["key"] == "llama/weights.bin" and done["bytes"] == len(data)
    content = client.get(done["url"]).content
    assert hashlib.sha256(content).digest() == hashlib.sha256(data).digest()

    assert client.get("/v1/buckets/models/llama/weights.bin").json() == done
    assert {"name": "models"} in client.get("/v1/buckets").json()["data"]
    listed = client.get("/v1/buckets/models", params={"delimiter": "/"}).json()
    assert listed["data"] == [] and listed["prefixes"] == ["llama/"]
    assert client.get("/v1/buckets/models").json()["data"] == [done]

    assert client.delete("/v1/buckets/models/llama/weights.bin").json() == done
    assert_openai_error(client.get("/v1/buckets/models/llama/weights.bin"), 404)
    assert_openai_error(client.get(done["url"]), 404)
    assert {"name": "models"} not in client.get("/v1/buckets").json()["data"]


def test_artifacts_live_in_the_bucket_artifacts(client):
    via_bucket = start(client, "artifacts", "shared/a.txt", 2, "text/plain")
    client.post(via_bucket["url"], content=b"hi")
    artifact = client.get("/v1/artifacts/shared/a.txt").json()
    assert artifact["size"] == 2 and artifact["mime_type"] == "text/plain"
    assert client.get("/v1/buckets/artifacts/shared/a.txt").json()["url"] == artifact["uri"]


def test_zero_size_upload_completes_at_once(client):
    upload = start(client, "empty", "nothing", 0)
    assert upload["offset"] == 0
    assert client.get("/v1/buckets/empty/nothing").json()["bytes"] == 0


@pytest.mark.parametrize("bucket", ["", "a b", "a/b", "ü", "x" * 65, "a.b", "..", "%2e"])
def test_bad_bucket_names_are_400(client, bucket):
    response = client.post(
        "/v1/buckets", json={"bucket": bucket, "key": "k", "mime_type": "text/plain", "size": 1}
    )
    assert_openai_error(response, 400, param="bucket")


@pytest.mark.parametrize("key", ["", "/a", "a/", "a//b", "a/../b", "..", "a\tb", "a\\b", "x" * 1025])
def test_bad_keys_are_400(client, key):
    response = client.post(
        "/v1/buckets", json={"bucket": "b", "key": key, "mime_type": "text/plain", "size": 1}
    )
    assert_openai_error(response, 400, param="key")


def test_listing_by_a_prefix_of_any_key(client):
    for key in ("报告/2024 Q1.pdf", "报告/草稿/a.txt", "报表.txt", "Zürich/x"):
        start(client, "intl", key, 0)

    def listing(prefix: str, **params: str) -> tuple[list[str], list[str]]:
        body = client.get("/v1/buckets/intl", params={"prefix": prefix, **params}).json()
        return [item["key"] for item in body["data"]], body["prefixes"]

    assert listing("报告/", delimiter="/") == (["报告/2024 Q1.pdf"], ["报告/草稿/"])
    assert listing("报") == (["报告/2024 Q1.pdf", "报告/草稿/a.txt", "报表.txt"], [])
    assert listing("Zu\u0308") == (["Zürich/x"], [])  # NFD in, NFC as stored
    assert listing("报告/2024 Q") == (["报告/2024 Q1.pdf"], [])


@pytest.mark.parametrize("prefix", ["/a", "a\\b", "a\tb", "a\u202eb", "x" * 1025, "é" * 513])
def test_bad_prefixes_are_400(client, prefix):
    assert_openai_error(client.get("/v1/buckets/b", params={"prefix": prefix}), 400, param="prefix")


def test_no_listing_parameter_passes_a_character_no_key_holds_to_the_database(client):
    """Cursors and filters of every face's listing refuse NUL and control characters with a 400 naming
    the parameter, on every backend (PostgreSQL cannot even compare such text: it would be a 500)."""
    start(client, "b", "k", 0)
    for bad in ("\x00", "a\x00", "file-\x00", "\x1b", "a\nb"):
        for url, param in (
            ("/v1/files", "after"),
            ("/v1/files", "purpose"),
            ("/v1/artifacts", "prefix"),
            ("/v1/buckets/b", "prefix"),
            ("/v1/buckets/b", "delimiter"),
            ("/v1/buckets/b", "start_index"),
        ):
            assert_openai_error(client.get(url, params={param: bad}), 400, param=param)
    for bad in ("\x00", "a\x00"):
        assert_openai_error(client.get(f"/v1/buckets/{quote(bad)}", params={"prefix": "p"}), 400)
        assert_openai_error(client.get(f"/v1/buckets/b/{quote(bad)}"), 400, param="key")


def test_offset_mismatch_and_over_size(client):
    upload = start(client, "b", "k", 4)
    conflict = client.post(upload["url"], content=b"ab", headers={"Upload-Offset": "2"})
    assert_openai_error(conflict, 409, code="offset_mismatch")
    assert conflict.headers["upload-offset"] == "0"
    assert_openai_error(client.post(upload["url"], content=b"abcde"), 413)
    assert client.get(upload["url"]).json()["offset"] == 0


def test_another_tenant_sees_nothing(server, client):
    upload = start(client, "private", "secret.txt", 6, "text/plain")
    client.post(upload["url"], content=b"secret")
    with server.client(server.new_tenant()) as other:
        assert other.get("/v1/buckets").json()["data"] == []
        assert other.get("/v1/buckets/private").json()["data"] == []
        assert_openai_error(other.get("/v1/buckets/private/secret.txt"), 404)
        assert_openai_error(other.delete("/v1/buckets/private/secret.txt"), 404)
        assert_openai_error(other.get(upload["url"]), 404)
        assert_openai_error(other.post(upload["url"], content=b"x"), 404)
    assert client.get("/v1/buckets/private/secret.txt").status_code == 200
