"""``GET/HEAD /v1/files/{id}/content`` over raw httpx: validators, ranges, conditional requests, safe
attachment headers, and byte-exact bodies."""

from __future__ import annotations

import hashlib
import os
import re
from urllib.parse import unquote

import pytest
from _support import MULTIPART, RawConnection, auth, field_part, file_part, multipart, sha256, upload

DATA = bytes(range(256)) * 4  # 1,024 bytes, every byte value


@pytest.fixture
def stored(client) -> dict:
    return upload(client, DATA, "data.bin")


def _content(file_id: str) -> str:
    return f"/v1/files/{file_id}/content"


def _upload_named(client, raw_filename: bytes, data: bytes = b"named") -> dict:
    body = multipart(field_part("purpose", "assistants"), file_part(data, raw_filename))
    response = client.post("/v1/files", content=body, headers={"Content-Type": MULTIPART})
    assert response.status_code == 200, response.text
    return response.json()


def _disposition_filenames(header: str) -> tuple[str | None, str | None]:
    """(the quoted ASCII ``filename``, the decoded ``filename*``) of a Content-Disposition value."""
    plain = re.search(r'filename="((?:[^"\\]|\\.)*)"', header)
    extended = re.search(r"filename\*=UTF-8''([^;\s]*)", header)
    return (
        plain.group(1) if plain else None,
        unquote(extended.group(1), errors="strict") if extended else None,
    )


def test_download_full_body_with_validators_and_safety_headers(client, stored):
    response = client.get(_content(stored["id"]))
    assert response.status_code == 200
    assert response.content == DATA
    headers = response.headers
    assert headers["content-length"] == str(len(DATA))
    assert headers["accept-ranges"] == "bytes"
    assert headers["etag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-disposition"] == 'attachment; filename="data.bin"'
    assert "last-modified" in headers
    assert "sandbox" in headers["content-security-policy"]
    assert headers["content-type"] == "application/octet-stream"


def test_download_single_range_returns_206(client, stored):
    response = client.get(_content(stored["id"]), headers={"Range": "bytes=10-19"})
    assert response.status_code == 206
    assert response.content == DATA[10:20]
    assert response.headers["content-range"] == f"bytes 10-19/{len(DATA)}"
    assert response.headers["content-length"] == "10"
    first = client.get(_content(stored["id"]), headers={"Range": "bytes=0-0"})
    assert (first.status_code, first.content, first.headers["content-range"]) == (
        206,
        DATA[:1],
        f"bytes 0-0/{len(DATA)}",
    )
    past_end = client.get(_content(stored["id"]), headers={"Range": "bytes=1000-5000"})
    assert past_end.status_code == 206
    assert past_end.content == DATA[1000:]
    assert past_end.headers["content-range"] == f"bytes 1000-1023/{len(DATA)}"


def test_download_open_and_suffix_ranges(client, stored):
    rest = client.get(_content(stored["id"]), headers={"Range": "bytes=5-"})
    assert rest.status_code == 206
    assert rest.content == DATA[5:]
    assert rest.headers["content-range"] == f"bytes 5-{len(DATA) - 1}/{len(DATA)}"
    assert rest.headers["content-length"] == str(len(DATA) - 5)
    tail = client.get(_content(stored["id"]), headers={"Range": "bytes=-10"})
    assert tail.status_code == 206
    assert tail.content == DATA[-10:]
    assert tail.headers["content-range"] == f"bytes {len(DATA) - 10}-{len(DATA) - 1}/{len(DATA)}"
    whole = client.get(_content(stored["id"]), headers={"Range": "bytes=-99999"})
    assert (whole.status_code, whole.content) == (206, DATA)
    assert whole.headers["content-range"] == f"bytes 0-{len(DATA) - 1}/{len(DATA)}"


def test_download_unsatisfiable_range_is_416_and_unusable_range_is_ignored(client, stored):
    for header in (f"bytes={len(DATA)}-", "bytes=5000-6000", "bytes=-0"):
        response = client.get(_content(stored["id"]), headers={"Range": header})
        assert response.status_code == 416, header
        assert response.headers["content-range"] == f"bytes */{len(DATA)}", header
        assert response.content == b"", header
    # malformed, multi-range or non-byte ranges are ignored: the whole body, 200
    for header in ("bytes=0-1,5-6", "items=0-5", "bytes=9-3", "bytes=-", "bytes=a-b", "bytes 0-5"):
        response = client.get(_content(stored["id"]), headers={"Range": header})
        assert response.status_code == 200, header
        assert response.content == DATA, header
        assert "content-range" not in response.headers, header


def test_download_if_none_match_returns_304(client, stored):
    etag = client.get(_content(stored["id"])).headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = client.get(_content(stored["id"]), headers={"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.content == b"", header
        assert response.headers["etag"] == etag
    changed = client.get(_content(stored["id"]), headers={"If-None-Match": '"not-the-etag"'})
    assert (changed.status_code, changed.content) == (200, DATA)


def test_download_if_range_mismatch_returns_full_body(client, stored):
    etag = client.get(_content(stored["id"])).headers["etag"]
    matched = client.get(_content(stored["id"]), headers={"Range": "bytes=0-3", "If-Range": etag})
    assert (matched.status_code, matched.content) == (206, DATA[:4])
    stale = client.get(_content(stored["id"]), headers={"Range": "bytes=0-3", "If-Range": '"stale-etag"'})
    assert stale.status_code == 200
    assert stale.content == DATA
    assert "content-range" not in stale.headers
    old_date = client.get(
        _content(stored["id"]), headers={"Range": "bytes=0-3", "If-Range": "Mon, 01 Jan 2001 00:00:00 GMT"}
    )
    assert (old_date.status_code, old_date.content) == (200, DATA)


def test_download_head_headers_equal_get_headers_without_body(server, client, stored, tenant):
    for extra in ({}, {"Range": "bytes=3-9"}):
        got = client.get(_content(stored["id"]), headers=extra)
        head = client.head(_content(stored["id"]), headers=extra)
        assert head.status_code == got.status_code, extra
        assert head.content == b""
        strip = lambda h: {k: v for k, v in h.items() if k != "date"}  # noqa: E731
        assert strip(head.headers) == strip(got.headers), extra
    # on the wire: no body bytes follow the HEAD response, so the next response parses cleanly
    with RawConnection.open(server.url) as conn:
        conn.request("HEAD", _content(stored["id"]), headers=[auth(tenant.key)])
        head = conn.response(head=True)
        assert head.status == 200
        assert head.header("content-length") == str(len(DATA))
        conn.request("GET", "/health")
        assert conn.response().status == 200


def test_download_empty_file(client):
    empty = upload(client, b"", "empty.txt")
    response = client.get(_content(empty["id"]))
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "0"
    assert response.headers["etag"] == f'"{hashlib.sha256(b"").hexdigest()}"'
    assert client.head(_content(empty["id"])).headers["content-length"] == "0"
    ranged = client.get(_content(empty["id"]), headers={"Range": "bytes=0-"})
    assert ranged.status_code == 416
    assert ranged.headers["content-range"] == "bytes */0"


def test_every_range_of_an_empty_file_is_416(client):
    """An empty file has no first byte and no last bytes: every well-formed range is unsatisfiable, the
    workspace's downloads included; an unusable header is ignored as for any file."""
    empty = upload(client, b"", "empty.txt")
    client.post("/api/v1/files/upload", files={"file": ("empty.txt", b"")}).raise_for_status()
    for url in (_content(empty["id"]), "/api/v1/files/download?path=empty.txt"):
        for header in ("bytes=-5", "bytes=-1", "bytes=-0", "bytes=0-", "bytes=0-0", "bytes=0-99", "bytes=3-"):
            for method in ("GET", "HEAD"):
                response = client.request(method, url, headers={"Range": header})
                assert response.status_code == 416, (url, header, method)
                assert response.headers["content-range"] == "bytes */0", (url, header, method)
                assert response.content == b""
        for header in ("bytes=0-1,2-3", "bytes=-", "bytes=5-1"):
            response = client.get(url, headers={"Range": header})
            assert (response.status_code, response.content) == (200, b""), (url, header)
            assert "content-range" not in response.headers


def test_download_multi_mib_file_is_byte_exact(client):
    data = os.urandom(6 * 1024 * 1024 + 12345)
    created = upload(client, data, "big.bin")
    assert created["bytes"] == len(data)
    digest = hashlib.sha256()
    received = 0
    with client.stream("GET", _content(created["id"])) as response:
        assert response.status_code == 200
        assert response.headers["etag"] == f'"{sha256(data)}"'
        for chunk in response.iter_bytes():
            digest.update(chunk)
            received += len(chunk)
    assert received == len(data)
    assert digest.hexdigest() == sha256(data)
    middle = client.get(_content(created["id"]), headers={"Range": "bytes=3000000-4500000"})
    assert middle.content == data[3_000_000:4_500_001]


def test_download_content_disposition_quotes_and_percent_get_safe_fallback(client):
    plain_ascii = _upload_named(client, b"report-2024_v2 (final).txt")
    header = client.get(_content(plain_ascii["id"])).headers["content-disposition"]
    assert header == 'attachment; filename="report-2024_v2 (final).txt"', "plain ASCII needs no filename*"
    created = _upload_named(client, b'say \\"hi\\" 100%; x.txt')
    assert created["filename"] == 'say "hi" 100%; x.txt'
    header = client.get(_content(created["id"])).headers["content-disposition"]
    plain, extended = _disposition_filenames(header)
    assert plain is not None and not re.search(r'["\\%]', plain)
    assert extended == 'say "hi" 100%; x.txt'
    assert header.startswith("attachment; ")


def test_download_content_disposition_non_ascii_uses_rfc5987(client):
    for raw, ascii_expected in (
        ("naïve café.txt", "naive cafe.txt"),
        ("報告書.pdf", ".pdf"),
        ("日本", "download"),
    ):
        created = _upload_named(client, raw.encode())
        response = client.get(_content(created["id"]))
        header = response.headers["content-disposition"]
        header.encode("ascii")  # the header itself is pure ASCII
        plain, extended = _disposition_filenames(header)
        assert extended == raw
        assert plain == ascii_expected
        assert response.content == b"named"


def test_download_content_disposition_never_carries_control_characters(client):
    for raw in (b"evil\nSet-Cookie: a=b.txt", b"tab\there\x01\x7f.txt", b"a\x00b.txt"):
        created = _upload_named(client, raw)
        assert not re.search(r"[\x00-\x1f\x7f]", created["filename"]), created["filename"]
        response = client.get(_content(created["id"]))
        assert response.status_code == 200
        assert "set-cookie" not in response.headers
        header = response.headers["content-disposition"]
        assert not re.search(r"[\x00-\x1f\x7f]", header)
        assert not re.search(r"[\x00-\x1f\x7f]", _disposition_filenames(header)[1] or "")


def test_download_uses_declared_content_type(client):
    body = multipart(
        field_part("purpose", "assistants"), file_part(b"{}", "x.json", content_type=b"application/json")
    )
    created = client.post("/v1/files", content=body, headers={"Content-Type": MULTIPART}).json()
    assert client.get(_content(created["id"])).headers["content-type"] == "application/json"
    guessed = _upload_named(client, b"page.html", b"<script>alert(1)</script>")
    response = client.get(_content(guessed["id"]))
    assert response.headers["content-type"].startswith("text/html")
    # user HTML is never rendered inline: attachment, nosniff, and a sandboxing CSP
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"


def test_download_declared_content_type_with_control_characters_stays_downloadable(client):
    for declared in (
        b"text/plain\x01",
        b"text/plain\x00",
        b"text/\x7fhtml",
        b"a/" + b"b" * 300,
        b"not a type",
        b"t\xc3\xabxt/plain",
    ):
        body = multipart(
            field_part("purpose", "assistants"), file_part(b"payload", "p.txt", content_type=declared)
        )
        response = client.post("/v1/files", content=body, headers={"Content-Type": MULTIPART})
        assert response.status_code == 200, (declared, response.text)
        download = client.get(_content(response.json()["id"]))
        assert download.status_code == 200, declared
        assert download.content == b"payload", declared
        assert download.headers["content-type"].startswith("text/plain"), declared
