"""The workspace face over a real server: the documented curl commands verbatim, uploads into folders
(Chinese and emoji names), replacement, listings, file and folder (zip) downloads, empty folders, the
error envelope, 401s and tenant isolation. The same files are reached through the buckets face and by
their ``file-…`` ids."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support import (
    MULTIPART,
    RawConnection,
    assert_no_traceback,
    assert_openai_error,
    blob_files,
    field_part,
    file_part,
    multipart,
    staging_files,
    wait_until,
)
from sqlalchemy.engine import make_url

from cairn.app import create_app
from cairn.settings import Settings

REPO = Path(__file__).resolve().parents[3]
DOCUMENTED_URL = "http://127.0.0.1:8321"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def upload(client: httpx.Client, data: bytes, part_name: str, /, **fields: str) -> dict[str, Any]:
    response = client.post("/api/v1/files/upload", files={"file": (part_name, data)}, data=fields)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def listing(client: httpx.Client, path: str | None = None, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/files", params={"path": path, **params} if path is not None else params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def assert_workspace_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Exactly ``{"success": false, "error": {"code", "message"}}``, no traceback."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"success", "error"} and body["success"] is False
    assert set(body["error"]) == {"code", "message"} and body["error"]["message"]
    assert_no_traceback(response.text)
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]  # type: ignore[no-any-return]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the documented commands, verbatim ------------------------------------------------------------


def documented_commands(document: Path, marker: str) -> list[str]:
    """The command lines of the first ```bash block in ``document`` that contains ``marker``."""
    for block in re.findall(r"```bash\n(.*?)```", document.read_text(), flags=re.S):
        if marker in block:
            return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    raise AssertionError(f"no bash block with {marker!r} in {document}")


def run_commands(commands: list[str], url: str, workdir: Path, token: str | None = None) -> list[str]:
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
    if token is not None:
        env["TOKEN"] = token
    outputs = []
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command.replace(DOCUMENTED_URL, url)],
            cwd=workdir,
            env=env,
            capture_output=True,
            timeout=60,
        )
        assert done.returncode == 0, (command, done.stderr)
        outputs.append(done.stdout.decode())
    return outputs


def test_documented_curl_commands_work_verbatim(server, tenant, tmp_path):
    commands = documented_commands(REPO / "docs" / "api.md", "/api/v1/files/upload")
    outputs = run_commands(commands, server.url, tmp_path, tenant.key)
    spec = b"draft one\n"
    assert json.loads(outputs[1]) == {
        "success": True,
        "path": "docs/spec.pdf",
        "filename": "spec.pdf",
        "size": len(spec),
        "sha256": sha256(spec),
    }
    assert json.loads(outputs[2])["path"] == "docs/归档/规格 🪨.pdf"
    listed = json.loads(outputs[3])
    assert listed["base"] == "docs"
    assert [(i["name"], i["is_dir"], i["path"]) for i in listed["items"]] == [
        ("spec.pdf", False, "docs/spec.pdf"),
        ("归档", True, "docs/归档"),
    ]
    assert (tmp_path / "规格.pdf").read_bytes() == spec
    with zipfile.ZipFile(tmp_path / "docs.zip") as archive:
        assert archive.testzip() is None
        assert archive.namelist() == [
            "user_upload/docs/",
            "user_upload/docs/spec.pdf",
            "user_upload/docs/归档/",
            "user_upload/docs/归档/规格 🪨.pdf",
        ]
        assert archive.read("user_upload/docs/归档/规格 🪨.pdf") == spec
    assert json.loads(outputs[6])["error"]["code"] == "invalid_api_key"


def test_readme_tour_commands_work_verbatim(make_server, tmp_path):
    open_server = make_server(keyed=False)  # the tour runs before any key exists
    (tmp_path / "hello.txt").write_text("hello cairn\n")
    outputs = run_commands(
        documented_commands(REPO / "README.md", "/api/v1/files/upload"), open_server.url, tmp_path
    )
    assert json.loads(outputs[0])["path"] == "inputs/hello.txt"
    assert [item["path"] for item in json.loads(outputs[1])["items"]] == ["inputs/hello.txt"]
    with zipfile.ZipFile(tmp_path / "inputs.zip") as archive:
        assert archive.read("user_upload/inputs/hello.txt") == b"hello cairn\n"


# --- uploads ------------------------------------------------------------------------------------


def test_upload_to_the_root_and_into_folders_with_any_script(client):
    cases = [
        ("notes.txt", {}, "notes.txt"),
        ("数据分析.csv", {"dir": "报告/2024"}, "报告/2024/数据分析.csv"),
        ("🪨🔥.png", {"dir": "emoji 😀"}, "emoji 😀/🪨🔥.png"),
        ("ignored.bin", {"filename": "заметки.md", "dir": "docs"}, "docs/заметки.md"),
        ("cafe\u0301.txt", {}, "café.txt"),  # stored NFC
    ]
    for filename, fields, path in cases:
        data = os.urandom(2000)
        body = upload(client, data, filename, **fields)
        assert body == {
            "success": True,
            "path": path,
            "filename": path.rsplit("/", 1)[-1],
            "size": 2000,
            "sha256": sha256(data),
        }
        content = client.get("/api/v1/files/download", params={"path": path}).content
        assert content == data


def test_client_filenames_are_sanitised_to_one_segment_inside_the_workspace(client):
    for hostile, clean in [
        ("../../etc/passwd", "passwd"),
        ("C:\\x\\evil.exe", "evil.exe"),
        ("a\x01b.txt", "ab.txt"),
    ]:
        assert upload(client, b"x", "f.bin", filename=hostile, dir="in")["path"] == f"in/{clean}"
    assert upload(client, b"x", "..／..／escape.txt")["path"] == "escape.txt"


def test_upload_replaces_the_same_path_atomically(client):
    first = upload(client, b"version one", "report.txt", dir="out")
    old = client.get("/v1/buckets/workspace/out/report.txt").json()
    second = upload(client, b"version two!", "report.txt", dir="out")
    assert second["sha256"] != first["sha256"] and second["size"] == 12
    assert client.get("/api/v1/files/download", params={"path": "out/report.txt"}).content == b"version two!"
    assert [i["name"] for i in listing(client, "out")["items"]] == ["report.txt"]
    assert client.get(old["url"]).status_code == 404  # the old object (and its bytes) went
    new = client.get("/v1/buckets/workspace/out/report.txt").json()
    assert client.get(new["url"]).content == b"version two!"


def test_a_file_and_a_folder_cannot_share_a_path(server, client):
    upload(client, b"file", "report")
    assert_workspace_error(
        client.post("/api/v1/files/upload", files={"file": ("x", b"1")}, data={"dir": "report/2024"}),
        409,
        "conflict",
    )
    upload(client, b"a", "a.txt", dir="folder")
    assert_workspace_error(
        client.post("/api/v1/files/upload", files={"file": ("folder", b"1")}), 409, "conflict"
    )
    assert [i["path"] for i in listing(client)["items"]] == ["folder", "report"]
    assert wait_until(lambda: staging_files(server.settings.storage.data_dir) == [])


def test_no_face_makes_a_path_both_a_file_and_a_folder(client):
    """The workspace's rule holds for every face that writes the bucket ``workspace`` (a bucket session,
    tus with ``bucket`` + ``key``), both ways, in each face's envelope: the listing and the folder's zip
    never show a file and a folder of one name."""
    upload(client, b"a", "a.txt", dir="zc/folder")
    upload(client, b"file", "note", dir="zc")

    def bucket_upload(key: str, data: bytes) -> httpx.Response:
        body = {"bucket": "workspace", "key": key, "mime_type": "text/plain", "size": len(data)}
        created = client.post("/v1/buckets", json=body)
        if not data or created.status_code != 200:
            return created
        return client.post(created.json()["url"], content=data)

    def tus_upload(key: str, data: bytes) -> httpx.Response:
        pairs = {"bucket": "workspace", "key": key}
        meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())
        tus = {"Tus-Resumable": "1.0.0"}
        created = client.post(
            "/v1/tus/", headers={**tus, "Upload-Length": str(len(data)), "Upload-Metadata": meta}
        )
        if not data or created.status_code != 201:
            return created
        patch = {**tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
        return client.patch(created.headers["Location"], headers=patch, content=data)

    for key, reason in (("zc/folder", "'zc/folder' is a folder"), ("zc/note/x", "'zc/note' is a file")):
        for data in (b"", b"bytes"):
            assert_openai_error(bucket_upload(key, data), 409, code="conflict", param="key")
            refused = tus_upload(key, data)
            assert refused.status_code == 409 and reason in refused.text, refused.text
        error = assert_workspace_error(
            client.post(
                "/api/v1/files/upload",
                files={"file": (key.rsplit("/", 1)[1], b"w")},
                data={"dir": key.rsplit("/", 1)[0]},
            ),
            409,
            "conflict",
        )
        assert reason in error["message"]
    assert [(i["name"], i["is_dir"]) for i in listing(client, "zc")["items"]] == [
        ("folder", True),
        ("note", False),
    ]
    zipped = client.get("/api/v1/files/download", params={"path": "zc"}).content
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        assert archive.namelist() == [
            "user_upload/zc/",
            "user_upload/zc/folder/",
            "user_upload/zc/folder/a.txt",
            "user_upload/zc/note",
        ]
    assert bucket_upload("zc/folder2", b"fine").status_code == 200
    assert tus_upload("zc/folder3", b"fine").status_code == 204


def test_upload_errors_leave_nothing_stored(server, client):
    data_dir = server.settings.storage.data_dir
    blobs_before = blob_files(data_dir)
    no_file = multipart(field_part("dir", "docs"))
    response = client.post("/api/v1/files/upload", content=no_file, headers={"Content-Type": MULTIPART})
    assert_workspace_error(response, 400, "invalid_request")
    as_text = multipart(field_part("file", "not a file part"))
    response = client.post("/api/v1/files/upload", content=as_text, headers={"Content-Type": MULTIPART})
    assert_workspace_error(response, 400, "invalid_request")
    for fields in ({"dir": "../x"}, {"dir": "/abs"}, {"filename": ".."}, {"filename": "/"}, {"dir": "a\\b"}):
        big = multipart(
            *(field_part(k, v) for k, v in fields.items()), file_part(os.urandom(1_500_000), "f.bin")
        )
        response = client.post("/api/v1/files/upload", content=big, headers={"Content-Type": MULTIPART})
        assert_workspace_error(response, 400, "invalid_request")
        late = multipart(
            file_part(os.urandom(1_500_000), "f.bin"), *(field_part(k, v) for k, v in fields.items())
        )
        response = client.post("/api/v1/files/upload", content=late, headers={"Content-Type": MULTIPART})
        assert_workspace_error(response, 400, "invalid_request")
    truncated = multipart(file_part(os.urandom(1_500_000), "t.bin"), close=False)
    response = client.post("/api/v1/files/upload", content=truncated, headers={"Content-Type": MULTIPART})
    assert_workspace_error(response, 400, "invalid_request")
    response = client.post("/api/v1/files/upload", content=b"x", headers={"Content-Type": "text/plain"})
    assert_workspace_error(response, 400, "invalid_request")
    assert listing(client)["items"] == []
    assert wait_until(lambda: staging_files(data_dir) == [])
    assert blob_files(data_dir) == blobs_before


def test_upload_over_the_size_cap_is_413(make_server):
    live = make_server(max_upload_bytes=1000)
    tenant = live.new_tenant()
    with live.client(tenant) as client:
        response = client.post("/api/v1/files/upload", files={"file": ("big.bin", os.urandom(5000))})
        assert_workspace_error(response, 413, "too_large")
        assert listing(client)["items"] == []


# --- listings -----------------------------------------------------------------------------------


def test_list_root_and_nested_folders(client):
    upload(client, b"1", "b.txt")
    upload(client, b"22", "x.txt", dir="b")
    upload(client, b"333", "deep.bin", dir="z/y/x")
    upload(client, b"4444", "a")
    root = listing(client)
    assert root["success"] is True and root["base"] == "." and set(root) == {"success", "base", "items"}
    assert [(i["name"], i["is_dir"], i["size"], i["path"]) for i in root["items"]] == [
        ("a", False, 4, "a"),
        ("b.txt", False, 1, "b.txt"),
        ("b", True, 0, "b"),
        ("z", True, 0, "z"),
    ]
    for item in root["items"]:
        assert set(item) == {"name", "is_dir", "size", "modified_at", "path"}
        assert isinstance(item["modified_at"], float) and item["modified_at"] > 1.7e9
    assert listing(client, ".") == root == listing(client, "")
    nested = listing(client, "z/y")
    assert nested["base"] == "z/y"
    assert nested["items"] == [{**nested["items"][0], "name": "x", "is_dir": True, "path": "z/y/x"}]
    assert [i["path"] for i in listing(client, "z/y/x")["items"]] == ["z/y/x/deep.bin"]


def test_list_pages_with_limit_and_cursor(client):
    for i in range(7):
        upload(client, b"f", f"f{i}.txt", dir="many")
    upload(client, b"s", "inner.txt", dir="many/sub")
    whole = [i["path"] for i in listing(client, "many")["items"]]
    assert len(whole) == 8
    seen, cursor = [], None
    while True:
        page = listing(client, "many", limit=3, **({"cursor": cursor} if cursor else {}))
        seen += [i["path"] for i in page["items"]]
        cursor = page.get("next_cursor")
        if cursor is None:
            break
    assert seen == whole
    assert_workspace_error(client.get("/api/v1/files", params={"path": "many", "cursor": "other/x"}), 400)
    assert_workspace_error(client.get("/api/v1/files", params={"limit": 0}), 400)


def cursor_token(path: str) -> str:
    """A cursor as the server writes them, for cursors it never gave (crafted by a client)."""
    return "c1." + base64.urlsafe_b64encode(path.encode()).decode().rstrip("=")


def test_a_cursor_names_an_item_of_the_listed_folder(client):
    """The one cursor rule, alike on every backend: a cursor is a ``next_cursor`` as the server gave
    it, naming an item of the folder (a folder's path with its trailing '/'), existing or not;
    anything else, above all what no key can hold (NUL, control characters), is a 400 naming
    ``cursor``, never a database error."""
    for name in ("a.txt", "c.txt"):
        upload(client, b"x", name, dir="many")
    upload(client, b"x", "inner.txt", dir="many/b")
    first = listing(client, "many", limit=1)
    assert first["next_cursor"] == cursor_token("many/a.txt")
    after = {
        "many/a.txt": ["many/b", "many/c.txt"],
        "many/b/": ["many/c.txt"],
        "many/b": ["many/b", "many/c.txt"],  # the file 'b' would sort before the folder 'b/'
        "many/bz": ["many/c.txt"],  # no such item: the listing goes on after where it would be
        "many/zzz": [],
    }
    for path, expected in after.items():
        page = listing(client, "many", cursor=cursor_token(path))
        assert [i["path"] for i in page["items"]] == expected, path
    refused = {
        "many": [
            *(
                "garbage",
                "many/a.txt",
                "c1.",
                "c1.!!!!",
                "c1." + "A" * 5000,
                cursor_token("many/a.txt") + "=",
            ),
            *map(
                cursor_token,
                ("\x00", "many/\x00", "many/a\x00b", "many/\x1b[31m", "many/a\n", "many/\u202etxt"),
            ),
            *map(cursor_token, ("other/x", "many", "many/", "many//", "many/b/inner.txt", "many/../x")),
            "c1." + base64.urlsafe_b64encode(b"many/\xff").decode().rstrip("="),
        ],
        ".": ["garbage", "\x00", *map(cursor_token, ("\x00", "\x7f", "..", "a/b", "a//", "/", "many/b/"))],
    }
    for folder, cursors in refused.items():
        for cursor in cursors:
            response = client.get("/api/v1/files", params={"path": folder, "cursor": cursor})
            error = assert_workspace_error(response, 400, "invalid_request")
            assert "cursor" in error["message"], (folder, cursor, error)


def test_list_errors(client):
    upload(client, b"x", "file.txt", dir="d")
    assert_workspace_error(client.get("/api/v1/files", params={"path": "nope"}), 404, "not_found")
    assert_workspace_error(client.get("/api/v1/files", params={"path": "d/file.txt"}), 400, "invalid_request")
    for bad in ("../d", "/d", "d/", "d//x", "d\\x", "d/\x00"):
        assert_workspace_error(client.get("/api/v1/files", params={"path": bad}), 400, "invalid_request")


def test_empty_folders_are_listed_and_zipped(client):
    upload(client, b"tmp", "tmp.txt", dir="empty/sub")
    assert client.delete("/v1/buckets/workspace/empty/sub/tmp.txt").status_code == 200
    assert listing(client, "empty/sub")["items"] == []
    assert [(i["name"], i["is_dir"]) for i in listing(client, "empty")["items"]] == [("sub", True)]
    response = client.get("/api/v1/files/download", params={"path": "empty"})
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.namelist() == ["user_upload/empty/", "user_upload/empty/sub/"]
        assert all(info.is_dir() for info in archive.infolist())


# --- downloads ----------------------------------------------------------------------------------


def test_download_a_file_with_range_etag_and_safe_headers(client):
    data = os.urandom(10_000)
    upload(client, data, "季度 报告.pdf", dir="docs")
    response = client.get("/api/v1/files/download", params={"path": "docs/季度 报告.pdf"})
    assert response.content == data
    headers = response.headers
    assert headers["etag"] == f'"{sha256(data)}"' and headers["accept-ranges"] == "bytes"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-type"] == "application/pdf"
    disposition = headers["content-disposition"]
    assert disposition.startswith("attachment; filename=") and "%E5%AD%A3%E5%BA%A6%20" in disposition
    part = client.get(
        "/api/v1/files/download", params={"path": "docs/季度 报告.pdf"}, headers={"Range": "bytes=100-199"}
    )
    assert part.status_code == 206 and part.content == data[100:200]
    cached = client.get(
        "/api/v1/files/download",
        params={"path": "docs/季度 报告.pdf"},
        headers={"If-None-Match": headers["etag"]},
    )
    assert cached.status_code == 304
    head = client.head("/api/v1/files/download", params={"path": "docs/季度 报告.pdf"})
    assert head.status_code == 200 and head.headers["content-length"] == "10000" and head.content == b""


def test_download_a_folder_as_a_zip_with_exact_length(server, tenant, client):
    files = {
        "out/summary.md": b"# summary\n",
        "out/数据/表格.csv": os.urandom(3_000_000),
        "out/🪨/rock.bin": os.urandom(1_048_576),
        "out/数据/empty.txt": b"",
    }
    for path, data in files.items():
        folder, name = path.rsplit("/", 1)
        upload(client, data, name, dir=folder)
    upload(client, b"outside", "other.txt", dir="elsewhere")

    with RawConnection.open(server.url) as conn:  # count the bytes on the wire, not what httpx decodes
        conn.request(
            "GET", "/api/v1/files/download?path=out", headers=[("Authorization", f"Bearer {tenant.key}")]
        )
        raw = conn.response()
    assert raw.status == 200 and raw.header("transfer-encoding") is None
    assert int(raw.header("content-length") or -1) == len(raw.body)
    assert raw.header("content-type") == "application/zip"
    assert raw.header("content-disposition") == 'attachment; filename="out.zip"'
    assert raw.header("x-content-type-options") == "nosniff" and raw.header("accept-ranges") == "none"
    with zipfile.ZipFile(io.BytesIO(raw.body)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert names == [
            "user_upload/out/",
            "user_upload/out/summary.md",
            "user_upload/out/数据/",
            "user_upload/out/数据/empty.txt",
            "user_upload/out/数据/表格.csv",
            "user_upload/out/🪨/",
            "user_upload/out/🪨/rock.bin",
        ]
        for path, data in files.items():
            assert sha256(archive.read("user_upload/" + path)) == sha256(data)
        assert all(info.flag_bits & 0x800 for info in archive.infolist())
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
    head = client.head("/api/v1/files/download", params={"path": "out"})
    assert head.headers["content-length"] == str(len(raw.body)) and head.content == b""
    whole = client.get("/api/v1/files/download", params={"path": "."})
    with zipfile.ZipFile(io.BytesIO(whole.content)) as archive:
        assert "user_upload/elsewhere/other.txt" in archive.namelist()
    assert whole.headers["content-disposition"] == 'attachment; filename="workspace.zip"'


def test_download_errors(client):
    upload(client, b"x", "f.txt", dir="d")
    assert_workspace_error(client.get("/api/v1/files/download"), 400, "invalid_request")
    assert_workspace_error(client.get("/api/v1/files/download", params={"path": "d/nope"}), 404, "not_found")
    assert_workspace_error(
        client.get("/api/v1/files/download", params={"path": "../d"}), 400, "invalid_request"
    )
    assert_workspace_error(client.get("/api/v1/files/nowhere"), 404, "not_found")
    assert_workspace_error(client.delete("/api/v1/files/download", params={"path": "d"}), 405)


# --- one store, three faces ---------------------------------------------------------------------


def test_workspace_files_are_bucket_objects_and_files_by_id(client):
    data = b"shared bytes"
    upload(client, data, "共享.txt", dir="team")
    obj = client.get("/v1/buckets/workspace/team/共享.txt").json()
    assert obj["key"] == "team/共享.txt" and obj["bytes"] == len(data)
    assert obj["url"].startswith("/v1/files/file-")
    assert client.get(obj["url"]).content == data
    file_id = obj["url"].split("/")[3]
    assert client.get(f"/v1/files/{file_id}").json()["filename"] == "共享.txt"
    assert client.delete(f"/v1/files/{file_id}").json()["deleted"] is True
    assert listing(client, "team")["items"] == []  # the folder stays (its marker), the file went


# --- auth, tenancy, envelope --------------------------------------------------------------------


def test_missing_or_invalid_tokens_are_401(server, tenant):
    with server.client() as anonymous:
        for method, url in [
            ("GET", "/api/v1/files"),
            ("GET", "/api/v1/files/download?path=x"),
            ("POST", "/api/v1/files/upload"),
        ]:
            for headers in ({}, {"Authorization": "Bearer cairn-not-a-key"}, {"Authorization": "Basic eDp5"}):
                response = anonymous.request(method, url, headers=headers)
                assert_workspace_error(response, 401, "invalid_api_key")
                assert response.headers["www-authenticate"] == "Bearer"


def test_another_tenant_sees_nothing(server, client):
    upload(client, b"secret", "secret.txt", dir="private")
    obj = client.get("/v1/buckets/workspace/private/secret.txt").json()
    with server.client(server.new_tenant()) as other:
        assert listing(other)["items"] == []
        assert_workspace_error(other.get("/api/v1/files", params={"path": "private"}), 404)
        for path in ("private", "private/secret.txt"):
            assert_workspace_error(other.get("/api/v1/files/download", params={"path": path}), 404)
        assert other.get(obj["url"]).status_code == 404
        assert other.get("/v1/buckets/workspace/private/secret.txt").status_code == 404
        assert upload(other, b"mine", "secret.txt", dir="private")["path"] == "private/secret.txt"
    assert client.get("/api/v1/files/download", params={"path": "private/secret.txt"}).content == b"secret"


class TcpRelay:
    """127.0.0.1:<port> relayed to ``target``; ``stop()`` drops every connection and refuses new ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)  # pass the end on (a close would not wake the other pump)

    def stop(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); a close alone would not
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_database_down_is_503(database_url, make_server):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite is a file in the data directory: there is no database server to lose")
    url = make_url(database_url)
    relay = TcpRelay((url.host or "127.0.0.1", url.port or 5432))
    relayed = url.set(host="127.0.0.1", port=relay.port)
    live = make_server(database_url=relayed.render_as_string(hide_password=False))
    with live.client(live.new_tenant()) as client:
        upload(client, b"x", "x.txt")
        relay.stop()
        assert_workspace_error(client.get("/api/v1/files"), 503, "unavailable")
        response = client.post("/api/v1/files/upload", files={"file": ("y.txt", b"y")})
        assert_workspace_error(response, 503, "unavailable")
    assert wait_until(lambda: staging_files(live.settings.storage.data_dir) == [])


def test_openapi_documents_the_workspace_envelope(tmp_path):
    schema = create_app(Settings(data_dir=tmp_path)).openapi()
    envelope = "#/components/schemas/WorkspaceError"
    for path in ("/api/v1/files", "/api/v1/files/upload", "/api/v1/files/download"):
        for method, operation in schema["paths"][path].items():
            for status in ("400", "401", "404"):
                content = operation["responses"][status]["content"]["application/json"]
                assert content["schema"]["$ref"] == envelope, (path, method, status)
    upload_body = schema["paths"]["/api/v1/files/upload"]["post"]["requestBody"]["content"][
        "multipart/form-data"
    ]
    assert upload_body["schema"]["required"] == ["file"]
