"""The OpenAI Uploads API driven by the official ``openai`` client (its chunked upload helper included)
and by httpx where the client cannot misbehave on purpose: parts in parallel and out of order, md5,
wrong totals, over-size parts, cancel, expiry, tenancy."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from _support import assert_openai_error, backdate_session, sha256, staging_files, wait_until

MiB = 1 << 20


@pytest.fixture
def oai(server, tenant) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key=tenant.key, max_retries=0, timeout=60) as client:
        yield client


def create(client: httpx.Client, size: int, **extra) -> dict:
    body = {"bytes": size, "filename": "data.jsonl", "mime_type": "text/jsonl", "purpose": "batch", **extra}
    response = client.post("/v1/uploads", json=body)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def add_part(client: httpx.Client, upload_id: str, data: bytes) -> httpx.Response:
    return client.post(f"/v1/uploads/{upload_id}/parts", files={"data": ("blob", data)})


def test_the_chunked_upload_helper_makes_a_byte_exact_file(oai, tmp_path):
    data = os.urandom(5 * MiB + 12345)
    path = tmp_path / "train.jsonl"
    path.write_bytes(data)
    upload = oai.uploads.upload_file_chunked(
        file=path,
        mime_type="text/jsonl",
        purpose="fine-tune",
        part_size=2 * MiB,
        md5=hashlib.md5(data).hexdigest(),
    )
    assert upload.status == "completed" and upload.object == "upload"
    assert (upload.bytes, upload.filename, upload.purpose) == (len(data), "train.jsonl", "fine-tune")
    assert upload.file is not None and upload.file.bytes == len(data)
    assert oai.files.retrieve(upload.file.id).filename == "train.jsonl"
    assert oai.files.content(upload.file.id).content == data
    assert upload.file.id in [f.id for f in oai.files.list()]


def test_parts_sent_in_parallel_and_out_of_order_join_in_the_order_given(server, tenant, client):
    pieces = [os.urandom(n) for n in (3 * MiB, 1, 2 * MiB + 7, 4 * MiB)]
    data = b"".join(pieces)
    upload = create(client, len(data), expires_after={"anchor": "created_at", "seconds": 7200})
    assert upload["status"] == "pending" and upload["file"] is None and upload["object"] == "upload"

    def send(piece: bytes) -> dict:
        with server.client(tenant) as own:
            response = add_part(own, upload["id"], piece)
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

    with ThreadPoolExecutor(4) as pool:
        parts = list(pool.map(send, reversed(pieces)))[::-1]
    assert all(p["object"] == "upload.part" and p["upload_id"] == upload["id"] for p in parts)
    done = client.post(
        f"/v1/uploads/{upload['id']}/complete",
        json={"part_ids": [p["id"] for p in parts], "md5": hashlib.md5(data).hexdigest()},
    )
    assert done.status_code == 200, done.text
    file = done.json()["file"]
    assert done.json()["status"] == "completed"
    assert file["expires_at"] == file["created_at"] + 7200 and file["purpose"] == "batch"
    content = client.get(f"/v1/files/{file['id']}/content")
    assert content.content == data and content.headers["etag"] == f'"{sha256(data)}"'


def test_a_wrong_md5_or_total_keeps_the_parts_for_another_try(client):
    data = os.urandom(300_000)
    upload = create(client, len(data))
    first, second = (add_part(client, upload["id"], half).json()["id"] for half in (data[:100], data[100:]))
    url = f"/v1/uploads/{upload['id']}/complete"
    wrong_md5 = client.post(url, json={"part_ids": [first, second], "md5": hashlib.md5(b"x").hexdigest()})
    assert_openai_error(wrong_md5, 400, code="checksum_mismatch")
    assert wrong_md5.headers["x-should-retry"] == "false"
    assert_openai_error(client.post(url, json={"part_ids": [second]}), 400, param="part_ids")
    assert_openai_error(client.post(url, json={"part_ids": [first, first, second]}), 400, param="part_ids")
    assert_openai_error(client.post(url, json={"part_ids": [first, "part-nope"]}), 400, param="part_ids")
    assert_openai_error(client.post(url, json={"part_ids": [first, second], "md5": "zz"}), 400, param="md5")
    done = client.post(url, json={"part_ids": [first, second], "md5": hashlib.md5(data).hexdigest()})
    assert done.status_code == 200, done.text
    assert client.get(f"/v1/files/{done.json()['file']['id']}/content").content == data
    again = client.post(url, json={"part_ids": [first, second]})
    assert_openai_error(again, 409, code="upload_completed")
    assert again.headers["x-should-retry"] == "false"
    assert_openai_error(add_part(client, upload["id"], b"late"), 409, code="upload_completed")


def test_the_openai_client_raises_its_own_error_types(oai):
    upload = oai.uploads.create(bytes=4, filename="a.txt", mime_type="text/plain", purpose="assistants")
    part = oai.uploads.parts.create(upload.id, data=b"abcd")
    with pytest.raises(openai.BadRequestError):
        oai.uploads.complete(upload.id, part_ids=[part.id], md5="0" * 32)
    with pytest.raises(openai.NotFoundError):
        oai.uploads.complete("upload-" + "0" * 32, part_ids=[part.id])
    with pytest.raises(openai.BadRequestError):
        oai.uploads.create(bytes=4, filename="a.txt", mime_type="text/plain", purpose="nope")  # type: ignore[arg-type]
    completed = oai.uploads.complete(upload.id, part_ids=[part.id])
    assert completed.file is not None and oai.files.content(completed.file.id).content == b"abcd"


def test_parts_over_64_mib_or_past_the_declared_size_are_413(client):
    upload = create(client, 70 * MiB)
    assert_openai_error(add_part(client, upload["id"], b"\0" * (64 * MiB + 1)), 413)
    small = create(client, 10)
    assert add_part(client, small["id"], b"123456").status_code == 200
    assert_openai_error(add_part(client, small["id"], b"12345"), 413)
    assert add_part(client, small["id"], b"1234").status_code == 200


def test_a_declared_size_over_the_maximum_is_413(make_server):
    live = make_server(max_upload_bytes=1000)
    with live.client(live.new_tenant()) as client:
        response = client.post(
            "/v1/uploads", json={"bytes": 1001, "filename": "a", "mime_type": "a/b", "purpose": "batch"}
        )
        assert_openai_error(response, 413)


@pytest.mark.parametrize(
    "change",
    [
        {"purpose": "nope"},
        {"bytes": -1},
        {"bytes": "10"},
        {"mime_type": "pdf"},
        {"filename": ""},
        {"expires_after": {"anchor": "created_at", "seconds": 10}},
        {"expires_after": {"anchor": "last_active_at", "seconds": 3600}},
    ],
)
def test_bad_create_requests_are_400(client, change):
    body = {"bytes": 10, "filename": "a.txt", "mime_type": "text/plain", "purpose": "assistants", **change}
    assert_openai_error(client.post("/v1/uploads", json=body), 400)


def test_a_body_that_is_not_json_is_400_without_a_param(client):
    response = client.post("/v1/uploads", content=b"not json", headers={"Content-Type": "application/json"})
    error = assert_openai_error(response, 400, code="invalid_request")
    assert error["param"] is None and "JSON" in error["message"]


def test_a_part_without_data_or_not_multipart_is_400(client):
    upload = create(client, 10)
    assert_openai_error(client.post(f"/v1/uploads/{upload['id']}/parts", content=b"raw"), 400)
    no_data = client.post(f"/v1/uploads/{upload['id']}/parts", data={"other": "x"}, files={"x": ("f", b"1")})
    assert_openai_error(no_data, 400)


def test_an_empty_upload_completes_with_no_parts(client):
    upload = create(client, 0)
    done = client.post(f"/v1/uploads/{upload['id']}/complete", json={"part_ids": []})
    assert done.status_code == 200, done.text
    assert client.get(f"/v1/files/{done.json()['file']['id']}/content").content == b""


def test_cancel_drops_the_parts_and_ends_the_upload(server, client):
    upload = create(client, 10)
    part = add_part(client, upload["id"], b"12345").json()
    cancelled = client.post(f"/v1/uploads/{upload['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert_openai_error(add_part(client, upload["id"], b"67890"), 404)
    assert_openai_error(
        client.post(f"/v1/uploads/{upload['id']}/complete", json={"part_ids": [part["id"]]}), 404
    )
    assert_openai_error(client.post(f"/v1/uploads/{upload['id']}/cancel"), 404)
    assert server.staged_sessions() == []


def test_a_completed_upload_cannot_be_cancelled(client):
    upload = create(client, 3)
    part = add_part(client, upload["id"], b"abc").json()
    client.post(f"/v1/uploads/{upload['id']}/complete", json={"part_ids": [part["id"]]})
    assert_openai_error(client.post(f"/v1/uploads/{upload['id']}/cancel"), 409, code="upload_completed")


def test_an_expired_upload_is_gone(make_server):
    live = make_server(upload_expiry=600)
    with live.client(live.new_tenant()) as client:
        upload = create(client, 10)
        assert upload["expires_at"] - upload["created_at"] == 600
        part = add_part(client, upload["id"], b"0123456789").json()
        asyncio.run(backdate_session(live.settings.storage.resolved_database_url, upload["id"]))
        assert_openai_error(add_part(client, upload["id"], b"1"), 404)
        assert_openai_error(
            client.post(f"/v1/uploads/{upload['id']}/complete", json={"part_ids": [part["id"]]}), 404
        )


def test_another_tenant_sees_nothing(server, client):
    upload = create(client, 3)
    part = add_part(client, upload["id"], b"abc").json()
    with server.client(server.new_tenant()) as other:
        assert_openai_error(add_part(other, upload["id"], b"x"), 404)
        assert_openai_error(
            other.post(f"/v1/uploads/{upload['id']}/complete", json={"part_ids": [part["id"]]}), 404
        )
        assert_openai_error(other.post(f"/v1/uploads/{upload['id']}/cancel"), 404)
    with server.client() as anonymous:
        assert_openai_error(anonymous.post(f"/v1/uploads/{upload['id']}/cancel"), 401)
    assert (
        client.post(f"/v1/uploads/{upload['id']}/complete", json={"part_ids": [part["id"]]}).status_code
        == 200
    )


def test_an_artifact_upload_is_not_an_openai_upload(client):
    artifact = client.post(
        "/v1/artifacts", json={"key": "a.txt", "mime_type": "text/plain", "size": 3}
    ).json()
    assert_openai_error(add_part(client, artifact["id"], b"abc"), 404)


def test_a_part_cut_off_mid_body_leaves_no_part(server, client):
    upload = create(client, 2 * MiB)
    body = b'--b\r\nContent-Disposition: form-data; name="data"; filename="x"\r\n\r\n' + b"a" * MiB
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) as raw:
        head = (
            f"POST /v1/uploads/{upload['id']}/parts HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: {client.headers['authorization']}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {len(body) + MiB}\r\n\r\n"
        )
        raw.sendall(head.encode() + body)
    assert wait_until(
        lambda: not staging_files(server.settings.storage.data_dir) and not server.staged_sessions()
    )
    whole = add_part(client, upload["id"], os.urandom(2 * MiB))
    assert whole.status_code == 200, whole.text


def test_concurrent_completions_make_one_file(server, tenant, client):
    data = os.urandom(MiB)
    upload = create(client, len(data))
    part = add_part(client, upload["id"], data).json()
    results: list[int] = []

    def complete() -> None:
        with server.client(tenant) as own:
            results.append(
                own.post(f"/v1/uploads/{upload['id']}/complete", json={"part_ids": [part["id"]]}).status_code
            )

    threads = [threading.Thread(target=complete) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(200) == 1 and set(results) <= {200, 409}, results
    assert len(client.get("/v1/files").json()["data"]) == 1


def test_a_server_restart_between_parts_and_chunks_loses_nothing(make_server):
    first = make_server()
    tenant = first.new_tenant()
    data = os.urandom(3 * MiB + 11)
    with first.client(tenant) as client:
        upload = create(client, len(data))
        part = add_part(client, upload["id"], data[:MiB]).json()
        session = client.post(
            "/v1/artifacts", json={"key": "restart.bin", "mime_type": "application/x", "size": len(data)}
        ).json()
        client.post(session["uri"], content=data[:MiB], headers={"Upload-Offset": "0"})
    second = first.restarted()
    try:
        with second.client(tenant) as client:
            rest = add_part(client, upload["id"], data[MiB:]).json()
            done = client.post(
                f"/v1/uploads/{upload['id']}/complete", json={"part_ids": [part["id"], rest["id"]]}
            )
            assert done.status_code == 200, done.text
            assert client.get(f"/v1/files/{done.json()['file']['id']}").status_code == 200
            content = client.get(f"/v1/files/{done.json()['file']['id']}/content")
            assert content.content == data and content.headers["etag"] == f'"{sha256(data)}"'
            assert client.get(session["uri"]).json()["offset"] == MiB
            artifact = client.post(
                session["uri"], content=data[MiB:], headers={"Upload-Offset": str(MiB)}
            ).json()
            assert artifact["sha256"] == sha256(data)
    finally:
        second.stop()
