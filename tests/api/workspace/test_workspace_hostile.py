"""Hostile paths against a live server, with the request line exactly as sent (no client normalises or
decodes anything on the way). Every vector is tried as the upload's ``dir`` and ``filename`` (both as
sent and percent-decoded), as the ``path`` of a listing and of a download, and as a key through the
buckets face. Each one must be refused with a clear 400 or land inside the uploader's own workspace
under its sanitised name: none escapes the data directory, none reaches another tenant, none is a 500."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from urllib.parse import unquote, unquote_to_bytes

import pytest
from _support import (
    MULTIPART,
    RawConnection,
    RawResponse,
    assert_no_traceback,
    auth,
    field_part,
    file_part,
    multipart,
)

from cairn.core.errors import InvalidInput
from cairn.core.paths import validate_path, validate_portable_path

SECRET = b"the other tenant's secret"

# Wire forms: what goes into the request target (percent-encoded where a raw byte could not be sent).
VECTORS = [
    "..",
    "../x",
    "a/../../x",
    "./x",
    "a/./b",
    "a//b",
    "a/",
    "/etc/passwd",
    "//etc/passwd",
    "%2e%2e",
    "%2e%2e%2fx",
    "..%2fx",
    ".%2e/x",
    "%2e%2e/%2e%2e/secret/passwd",
    "%252e%252e",  # double-encoded: must stay the literal name '%2e%2e' after one decode
    "%252e%252e%252fsecret",
    "a%2fb",
    "%2f",
    "%2fetc%2fpasswd",
    "C:%5cWindows%5cx",
    "..%5cx",
    "a%5cb",
    "%00",
    "a%00.txt",
    "%0a",
    "a%0d%0ab",
    "%1b%5b31m",
    "%7f",
    "%c2%85",  # NEL, a C1 control
    "%ef%bc%8e%ef%bc%8e",  # fullwidth '..'
    "%ef%bc%8e%ef%bc%8e%ef%bc%8fsecret",  # fullwidth '../secret'
    "a%ef%bc%8fb",  # fullwidth solidus
    "a%ef%bc%bcb",  # fullwidth reverse solidus
    "%e2%80%a5",  # two dot leader, NFKC '..'
    "%e2%84%80",  # account of, NFKC 'a/c'
    "evil%e2%80%aetxt.exe",  # right-to-left override
    "%ff",  # not UTF-8
    "%c0%ae%c0%ae",  # overlong UTF-8 '..'
    "%e0%80%ae",
    "a" * 256,
    "/".join(["abcdefgh"] * 114),  # 1025 bytes
    "name.",
    "name%20",
    "...",
    "cafe%cc%81",  # NFD 'café'
    "../../../../tmp/evil.sh",  # zip-slip
    "user_upload/../../x",
    "%u002e%u002e",  # IIS-style encoding: just a name here
    "..;/x",
    "%2e",
]


def raw(
    url: str, method: str, target: str, key: str, body: bytes = b"", content_type: str | None = None
) -> RawResponse:
    headers = [auth(key)] + ([("Content-Type", content_type)] if content_type else [])
    with RawConnection.open(url) as conn:
        conn.request(method, target, headers=headers, body=body)
        response = conn.response(head=method == "HEAD")
    assert response.status < 500, (method, target, response.status, response.body[:300])
    assert_no_traceback(response.body.decode("utf-8", "replace"))
    assert SECRET not in response.body, (method, target)
    return response


def refused_or_inside(response: RawResponse) -> dict | None:
    """A clear 400 in the workspace envelope (None), or the success body."""
    body = json.loads(response.body)
    if response.status == 400:
        assert body["success"] is False and body["error"]["code"] == "invalid_request", body
        assert body["error"]["message"]
        return None
    assert response.status == 200, (response.status, body)
    return body  # type: ignore[no-any-return]


def is_valid_path(path: str, *, portable: bool = True) -> bool:
    """Whether ``path`` is a canonical workspace path (portable), or at least a canonical key."""
    try:
        return (validate_portable_path if portable else validate_path)(path, param="path") == path
    except InvalidInput:
        return False


def upload_body(fields: dict[str, bytes], filename: bytes = b"payload.txt") -> bytes:
    return multipart(
        *(field_part(name, value) for name, value in fields.items()), file_part(b"payload", filename)
    )


@pytest.fixture
def victim(server, tenant):
    """The tenant under attack owns ``secret/passwd``; the attacker is another tenant."""
    body = multipart(field_part("dir", "secret"), file_part(SECRET, b"passwd"))
    with RawConnection.open(server.url) as conn:
        conn.request(
            "POST", "/api/v1/files/upload", headers=[auth(tenant.key), ("Content-Type", MULTIPART)], body=body
        )
        assert conn.response().status == 200
    return tenant


def test_at_least_forty_vectors():
    assert len(VECTORS) >= 40
    assert all(v.isascii() and v.isprintable() and " " not in v for v in VECTORS)


def test_hostile_dirs_are_refused_or_land_inside(server, victim):
    attacker = server.new_tenant()
    for vector in VECTORS:
        for sent in {vector.encode(), unquote_to_bytes(vector)}:
            response = raw(
                server.url,
                "POST",
                "/api/v1/files/upload",
                attacker.key,
                upload_body({"dir": sent}),
                MULTIPART,
            )
            body = refused_or_inside(response)
            if body is not None:
                assert is_valid_path(body["path"]), body
                folder = unicodedata.normalize("NFC", sent.decode())
                expected = "payload.txt" if folder in ("", ".") else f"{folder}/payload.txt"  # '.': the root
                assert body["path"] == expected, (sent, body)
    assert_workspace_is_clean(server, attacker.key)


def test_hostile_filenames_are_sanitised_to_one_segment(server, victim):
    attacker = server.new_tenant()
    for vector in VECTORS:
        for sent in {vector.encode(), unquote_to_bytes(vector)}:
            for body_bytes in (
                upload_body({"filename": sent, "dir": b"in"}),
                upload_body({"dir": b"in"}, sent),
            ):
                response = raw(
                    server.url, "POST", "/api/v1/files/upload", attacker.key, body_bytes, MULTIPART
                )
                body = refused_or_inside(response)
                if body is not None:
                    assert "/" not in body["filename"] and is_valid_path(body["filename"]), body
                    assert body["path"] == f"in/{body['filename']}", body
    assert_workspace_is_clean(server, attacker.key)


def test_hostile_paths_for_listings_and_downloads(server, victim):
    attacker = server.new_tenant()
    for vector in VECTORS:
        for route in ("/api/v1/files?path=", "/api/v1/files/download?path="):
            response = raw(server.url, "GET", route + vector, attacker.key)
            if unquote(vector) == ".":  # the attacker's own (empty) root
                assert response.status == 200 and b"passwd" not in response.body
                continue
            assert response.status in (400, 404), (route, vector, response.status, response.body[:200])
            body = json.loads(response.body)
            assert body["success"] is False and set(body["error"]) == {"code", "message"}
        # the owner's own reads: a vector may name one of the owner's paths, nothing beyond the workspace
        for route in ("/api/v1/files?path=", "/api/v1/files/download?path="):
            response = raw_owner(server.url, route + vector, victim.key)
            assert response.status in (200, 400, 404), (route, vector, response.status)
            if response.status == 200 and route.endswith("download?path="):
                assert unicodedata.normalize("NFC", unquote(vector)) in ("secret", "secret/passwd", "."), (
                    vector
                )


def raw_owner(url: str, target: str, key: str) -> RawResponse:
    with RawConnection.open(url) as conn:
        conn.request("GET", target, headers=[auth(key)])
        response = conn.response()
    assert response.status < 500, (target, response.status)
    assert_no_traceback(response.body.decode("utf-8", "replace"))
    return response


def test_hostile_keys_through_the_buckets_face(server, victim):
    attacker = server.new_tenant()
    for vector in VECTORS:
        for method in ("GET", "DELETE"):
            response = raw(server.url, method, "/v1/buckets/workspace/" + vector, attacker.key)
            assert response.status in (400, 404, 405), (method, vector, response.status)
            assert set(json.loads(response.body)) == {"error"}
        key = unquote_to_bytes(vector).decode("utf-8", "replace")
        create = json.dumps(
            {"bucket": "workspace", "key": key, "mime_type": "text/plain", "size": 0}
        ).encode()
        response = raw(server.url, "POST", "/v1/buckets", attacker.key, create, "application/json")
        if response.status == 200:
            created = raw(server.url, "GET", "/v1/buckets/workspace?limit=1000", attacker.key)
            keys = [o["key"] for o in json.loads(created.body)["data"]]
            assert all(is_valid_path(k.removesuffix("/"), portable=False) for k in keys), keys
        else:
            assert response.status == 400, (vector, response.status, response.body[:200])
    assert_workspace_is_clean(server, attacker.key)
    # the victim's file is untouched
    with RawConnection.open(server.url) as conn:
        conn.request("GET", "/api/v1/files/download?path=secret/passwd", headers=[auth(victim.key)])
        assert conn.response().body == SECRET


def test_names_that_differ_only_in_normal_form_are_one_file(server, tenant):
    key = tenant.key
    for form, data in (("NFC", b"composed"), ("NFD", b"decomposed")):
        name = unicodedata.normalize(form, "café résumé.txt").encode()
        body = multipart(field_part("dir", unicodedata.normalize(form, "dossié")), file_part(data, name))
        response = raw(server.url, "POST", "/api/v1/files/upload", key, body, MULTIPART)
        assert json.loads(response.body)["path"] == "dossié/café résumé.txt"
    listing = json.loads(raw(server.url, "GET", "/api/v1/files", key).body)
    assert [item["name"] for item in listing["items"]] == ["dossié"]
    listing = json.loads(raw(server.url, "GET", "/api/v1/files?path=" + quote_utf8("dossie\u0301"), key).body)
    assert [item["name"] for item in listing["items"]] == ["café résumé.txt"]
    for form in ("NFC", "NFD"):
        path = quote_utf8(unicodedata.normalize(form, "dossié/café résumé.txt"))
        assert raw(server.url, "GET", "/api/v1/files/download?path=" + path, key).body == b"decomposed"
        bucket_object = json.loads(raw(server.url, "GET", "/v1/buckets/workspace/" + path, key).body)
        assert bucket_object["key"] == "dossié/café résumé.txt"


def quote_utf8(text: str) -> str:
    return "".join(
        c if (c.isascii() and c.isalnum()) or c in "._-/" else "".join(f"%{b:02X}" for b in c.encode())
        for c in text
    )


def assert_workspace_is_clean(server, key: str) -> None:
    """Every key in the workspace is a valid path (markers end in '/'), and the data directory holds
    nothing but Cairn's own layout: no client-chosen name ever became a file or directory."""
    listed = json.loads(raw(server.url, "GET", "/v1/buckets/workspace?limit=1000", key).body)
    assert all(is_valid_path(obj["key"].removesuffix("/"), portable=False) for obj in listed["data"]), listed
    data_dir: Path = server.settings.storage.data_dir
    if not data_dir.exists():
        return  # blobs and staging on S3 and the metadata on PostgreSQL: nothing local to look at
    allowed = {
        "blobs",
        "staging",
        "sessions",
        "cairn.db",
        "cairn.db-wal",
        "cairn.db-shm",
        "cairn.db.migrate-lock",
        "sweep.lock",
    }
    assert {p.name for p in data_dir.iterdir()} <= allowed, sorted(p.name for p in data_dir.iterdir())
    for path in data_dir.rglob("*"):
        assert path.name.isascii() and "passwd" not in path.name and "evil" not in path.name, path
    for path in (data_dir / "blobs").rglob("*"):
        assert path.is_dir() or path.name.startswith("file-"), path
