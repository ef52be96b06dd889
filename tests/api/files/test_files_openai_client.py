"""The OpenAI Files API face driven by the official ``openai`` client: create, list (with cursor
pagination), retrieve, content, delete, ``expires_after`` and the error types the client raises."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import openai
import pytest
from _support import assert_openai_error, blob_files, create_many, sha256, staging_files, upload

UPLOAD_PURPOSES = ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]


@pytest.fixture
def oai(server, tenant) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key=tenant.key, max_retries=0, timeout=30) as client:
        yield client


def test_files_create_returns_file_object(oai):
    before = int(time.time())
    created = oai.files.create(file=("notes.txt", b"hello cairn"), purpose="assistants")
    after = int(time.time())
    assert created.object == "file"
    assert created.id.startswith("file-")
    assert created.bytes == len(b"hello cairn")
    assert created.filename == "notes.txt"
    assert created.purpose == "assistants"
    assert created.status == "processed"
    assert created.expires_at is None
    assert before <= created.created_at <= after
    assert oai.files.retrieve(created.id).model_dump() == created.model_dump()


def test_files_content_is_byte_exact(oai):
    data = os.urandom(300_000) + b"\x00\r\n\xff" * 10
    created = oai.files.create(file=("blob.bin", data), purpose="user_data")
    assert created.bytes == len(data)
    content = oai.files.content(created.id)
    assert sha256(content.read()) == sha256(data)
    empty = oai.files.create(file=("empty.txt", b""), purpose="assistants")
    assert empty.bytes == 0
    assert oai.files.content(empty.id).content == b""


def test_files_delete_removes_file_and_blob(oai, server):
    kept = oai.files.create(file=("kept.txt", b"stay"), purpose="assistants")
    created = oai.files.create(file=("gone.txt", b"bye"), purpose="assistants")
    assert len(blob_files(server.settings.storage.data_dir)) == 2
    deleted = oai.files.delete(created.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (created.id, True, "file")
    assert [f.id for f in oai.files.list()] == [kept.id]
    for call in (oai.files.retrieve, oai.files.content, oai.files.delete):
        with pytest.raises(openai.NotFoundError):
            call(created.id)
    assert len(blob_files(server.settings.storage.data_dir)) == 1
    assert oai.files.content(kept.id).content == b"stay"


def test_files_list_orders_and_limits(oai):
    created = [oai.files.create(file=(f"{i}.txt", b"x"), purpose="assistants") for i in range(5)]
    # ids sort by creation time (to the millisecond); within one millisecond the order is arbitrary
    ids = sorted(f.id for f in created)
    by_id = sorted(created, key=lambda f: f.id)
    assert [f.created_at for f in by_id] == sorted(f.created_at for f in created)
    default = oai.files.list()
    assert [f.id for f in default.data] == ids[::-1], "default order is newest first"
    assert default.has_more is False
    assert default.object == "list"
    assert (default.first_id, default.last_id) == (ids[-1], ids[0])  # type: ignore[attr-defined]
    for order, expected in (("asc", ids), ("desc", ids[::-1])):
        page = oai.files.list(limit=2, order=order)
        assert [f.id for f in page.data] == expected[:2], order
        assert page.has_more is True, order
        page = oai.files.list(limit=2, order=order, after=expected[1])
        assert [f.id for f in page.data] == expected[2:4], order
        page = oai.files.list(limit=2, order=order, after=expected[3])
        assert [f.id for f in page.data] == expected[4:], order
        assert page.has_more is False, order
        page = oai.files.list(limit=5, order=order)
        assert [f.id for f in page.data] == expected, order
        assert page.has_more is False, "a full last page must not claim more"
        assert list(oai.files.list(limit=2, order=order, after=expected[4])) == []


def test_files_list_auto_pagination_over_2000_files(oai, server, tenant):
    created = create_many(server.url, tenant.key, 2000)
    assert len(set(created)) == 2000
    for order in ("asc", "desc"):
        pages = list(oai.files.list(limit=100, order=order).iter_pages())
        assert len(pages) == 20, order
        assert all(len(page.data) == 100 for page in pages), order
        assert [page.has_more for page in pages] == [True] * 19 + [False], order
        seen = [f.id for page in pages for f in page.data]
        assert len(seen) == len(set(seen)) == 2000, f"{order}: a file was lost or repeated across pages"
        assert set(seen) == set(created), order
        assert seen == sorted(seen, reverse=order == "desc"), order
        stamps = [f.created_at for page in pages for f in page.data]
        assert stamps == sorted(stamps, reverse=order == "desc"), order
    # the client's own item iterator follows the same cursor
    assert [f.id for f in oai.files.list(limit=100, order="asc")] == sorted(created)


def test_files_list_pagination_keeps_files_created_in_the_same_second(oai, server, tenant):
    created = create_many(server.url, tenant.key, 60)
    stamps = [f.created_at for f in oai.files.list()]
    assert len(stamps) == 60
    assert max(stamps.count(s) for s in stamps) >= 2, "the test needs files sharing a created_at second"
    for order in ("asc", "desc"):
        seen = [f.id for page in oai.files.list(limit=7, order=order).iter_pages() for f in page.data]
        assert len(seen) == len(set(seen)) == 60, order
        assert set(seen) == set(created), order
    asc = [f.id for f in oai.files.list(limit=7, order="asc")]
    desc = [f.id for f in oai.files.list(limit=7, order="desc")]
    assert asc == desc[::-1]


def test_files_list_filters_by_purpose(oai):
    made = {
        purpose: oai.files.create(file=(f"{purpose}.txt", b"x"), purpose=purpose).id
        for purpose in UPLOAD_PURPOSES
    }
    for purpose, file_id in made.items():
        listed = list(oai.files.list(purpose=purpose))
        assert [(f.id, f.purpose) for f in listed] == [(file_id, purpose)], purpose
        assert oai.files.retrieve(file_id).purpose == purpose
    assert {f.id for f in oai.files.list()} == set(made.values())
    assert list(oai.files.list(purpose="batch_output")) == []
    page = oai.files.list(purpose="assistants", limit=1, after=made["assistants"])
    assert list(page) == []


def test_files_create_expires_after_bracket_fields_sets_expires_at(oai):
    expected = {}
    for seconds in (3600, 86_400, 2_592_000):
        created = oai.files.create(
            file=("exp.txt", b"x"),
            purpose="batch",
            expires_after={"anchor": "created_at", "seconds": seconds},
        )
        assert created.expires_at == created.created_at + seconds, seconds
        assert oai.files.retrieve(created.id).expires_at == created.created_at + seconds, seconds
        expected[created.id] = created.expires_at
    assert {f.id: f.expires_at for f in oai.files.list()} == expected


def test_files_create_expires_after_json_string_sets_expires_at(client):
    expires = json.dumps({"anchor": "created_at", "seconds": 7200})
    created = upload(client, b"x", "exp.txt", "batch", expires_after=expires)
    assert created["expires_at"] == created["created_at"] + 7200
    assert client.get(f"/v1/files/{created['id']}").json()["expires_at"] == created["created_at"] + 7200
    # purpose after the file part and expires_after as the very last field still apply
    body = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="late.txt"\r\n\r\nlate\r\n'
        b'--B\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--B\r\nContent-Disposition: form-data; name="expires_after"\r\n\r\n'
        b'{"anchor": "created_at", "seconds": 3600}\r\n--B--\r\n'
    )
    late = client.post(
        "/v1/files", content=body, headers={"Content-Type": "multipart/form-data; boundary=B"}
    ).json()
    assert (late["purpose"], late["expires_at"]) == ("batch", late["created_at"] + 3600)


def test_files_create_expires_after_out_of_range_is_rejected(oai, client, server):
    for seconds in (0, 1, 3599, 2_592_001, -3600, 10**12):
        with pytest.raises(openai.BadRequestError) as raised:
            oai.files.create(
                file=("x.txt", b"x"),
                purpose="batch",
                expires_after={"anchor": "created_at", "seconds": seconds},
            )
        assert raised.value.status_code == 400, seconds
        assert raised.value.body["param"] == "expires_after.seconds", seconds  # type: ignore[index]
        as_json = json.dumps({"anchor": "created_at", "seconds": seconds})
        response = client.post(
            "/v1/files", data={"purpose": "batch", "expires_after": as_json}, files={"file": ("x.txt", b"x")}
        )
        assert_openai_error(response, 400, code="invalid_request", param="expires_after.seconds")
    assert list(oai.files.list()) == []
    assert staging_files(server.settings.storage.data_dir) == []
    assert blob_files(server.settings.storage.data_dir) == []


def test_files_create_expires_after_malformed_is_rejected(client):
    cases = [
        {"expires_after": '{"anchor": "last_active_at", "seconds": 3600}'},
        {"expires_after": "not json"},
        {"expires_after": "[3600]"},
        {"expires_after": '{"anchor": "created_at", "seconds": "soon"}'},
        {"expires_after": '{"anchor": "created_at"}'},
        {"expires_after[anchor]": "created_at"},
        {"expires_after[anchor]": "created_at", "expires_after[seconds]": "1.5e4"},
        {"expires_after[seconds]": "3600"},
    ]
    for fields in cases:
        response = client.post(
            "/v1/files", data={"purpose": "batch", **fields}, files={"file": ("x.txt", b"x")}
        )
        error = assert_openai_error(response, 400, code="invalid_request")
        assert error["param"].startswith("expires_after"), fields
    assert client.get("/v1/files").json()["data"] == []


def test_files_errors_map_to_openai_exception_types(oai, server):
    with pytest.raises(openai.BadRequestError) as bad:
        oai.files.create(file=("x.txt", b"x"), purpose="not-a-purpose")  # type: ignore[arg-type]
    error = bad.value
    assert error.status_code == 400
    assert error.response.json() == {
        "error": {
            "message": error.body["message"],  # type: ignore[index]
            "type": "invalid_request_error",
            "param": "purpose",
            "code": "invalid_request",
        }
    }
    assert error.response.headers["x-should-retry"] == "false"
    stranger = openai.OpenAI(base_url=server.url + "/v1", api_key="cairn-nope-nope", max_retries=0)
    with stranger, pytest.raises(openai.AuthenticationError) as denied:
        stranger.files.list()
    assert denied.value.status_code == 401
    assert denied.value.body["type"] == "authentication_error"  # type: ignore[index]
    oai.files.create(file=("other.txt", b"x"), purpose="assistants")
    for call in (oai.files.retrieve, oai.files.content, oai.files.delete):
        with pytest.raises(openai.NotFoundError) as raised:
            call("file-DoesNotExist123")
        assert raised.value.status_code == 404
        body = raised.value.body
        assert isinstance(body, dict)
        assert set(body) == {"message", "type", "param", "code"}
        assert (body["code"], body["param"]) == ("not_found", "file_id")


def test_files_create_keeps_unicode_filename_and_strips_paths(oai):
    created = oai.files.create(file=("résumé 履歴書.txt", b"x"), purpose="assistants")
    assert created.filename == "résumé 履歴書.txt"
    assert oai.files.retrieve(created.id).filename == "résumé 履歴書.txt"
    assert oai.files.create(file=("../../etc/passwd", b"x"), purpose="assistants").filename == "passwd"
    assert oai.files.create(file=("C:\\Users\\me\\doc.txt", b"x"), purpose="assistants").filename == "doc.txt"
