"""Requests Cairn must refuse: each answer is the OpenAI envelope with the right status and ``param``,
never a traceback, and the keep-alive connection stays usable afterwards."""

from __future__ import annotations

from _support import (
    MULTIPART,
    RawConnection,
    assert_no_traceback,
    assert_openai_error,
    auth,
    field_part,
    file_part,
    multipart,
    upload,
    upload_body,
)

ODD_IDS = [
    "file-DoesNotExist123",
    "file-" + "a" * 123,  # 128 characters: the longest well-formed id
    "file-" + "a" * 124,
    "x" * 5000,
    "%00",
    "file-%00abc",
    "%C3%A9t%C3%A9",  # unicode
    "file-%F0%9F%92%A5",
    "%2E%2E",  # ".." once decoded
    "file-abc%20def",
    "file-abc'%20OR%20'1'='1",
]


def _post_form(client, *parts, content_type: str = MULTIPART):
    return client.post("/v1/files", content=multipart(*parts), headers={"Content-Type": content_type})


def test_create_bad_or_missing_purpose_is_rejected(client):
    for purpose in ("nope", "", "ASSISTANTS", "assistants_output", "batch_output"):
        response = client.post("/v1/files", data={"purpose": purpose}, files={"file": ("a.txt", b"x")})
        error = assert_openai_error(response, 400, code="invalid_request", param="purpose")
        assert error["type"] == "invalid_request_error"
    missing = client.post("/v1/files", files={"file": ("a.txt", b"x")})
    assert_openai_error(missing, 400, code="invalid_request", param="purpose")
    assert client.get("/v1/files").json()["data"] == []


def test_create_missing_file_is_rejected(client):
    response = client.post("/v1/files", data={"purpose": "assistants"}, files={"other": ("a.txt", b"x")})
    assert_openai_error(response, 400, code="invalid_request")
    only_fields = _post_form(client, field_part("purpose", "assistants"))
    assert_openai_error(only_fields, 400, code="invalid_request", param="file")
    file_as_text_field = _post_form(
        client, field_part("purpose", "assistants"), field_part("file", b"no filename")
    )
    assert_openai_error(file_as_text_field, 400, code="invalid_request", param="file")
    assert client.get("/v1/files").json()["data"] == []


def test_create_empty_filename_is_rejected(client):
    for name in (b"", b"   ", b".", b"..", b"a/", b"\x01\x02"):
        response = _post_form(client, field_part("purpose", "assistants"), file_part(b"x", name))
        assert_openai_error(response, 400, code="invalid_request", param="filename")
    bad_utf8 = _post_form(client, field_part("purpose", "assistants"), file_part(b"x", b"\xff\xfe.txt"))
    assert_openai_error(bad_utf8, 400, code="invalid_request")
    assert client.get("/v1/files").json()["data"] == []


def test_create_non_multipart_body_is_rejected(client):
    cases = [
        ("application/x-www-form-urlencoded", b"purpose=assistants&file=x"),
        ("text/plain", b"hello"),
        ("multipart/form-data", upload_body(b"x")),  # no boundary
        ("multipart/mixed; boundary=cairn-test-boundary-7f3a", upload_body(b"x")),
    ]
    for content_type, body in cases:
        response = client.post("/v1/files", content=body, headers={"Content-Type": content_type})
        assert_openai_error(response, 400, code="invalid_request", param="Content-Type")
    no_type = client.post("/v1/files", content=b"raw bytes")
    assert_openai_error(no_type, 400, code="invalid_request", param="Content-Type")
    # JSON starts an upload session into a bucket (docs/api.md): this body names none
    as_json = client.post("/v1/files", json={"purpose": "assistants", "file": "x"})
    assert_openai_error(as_json, 400, code="invalid_request", param="bucket")
    assert client.get("/v1/files").json()["data"] == []


def test_create_bad_text_fields_are_rejected(client):
    not_utf8 = _post_form(client, field_part("purpose", b"assist\xffants"), file_part(b"x", "a.txt"))
    assert_openai_error(not_utf8, 400, code="invalid_request", param="purpose")
    too_long = _post_form(client, field_part("purpose", "a" * 70_000), file_part(b"x", "a.txt"))
    assert_openai_error(too_long, 400, code="invalid_request", param="purpose")
    many = [field_part(f"f{i}", "v") for i in range(20)]
    too_many = _post_form(client, *many, field_part("purpose", "assistants"), file_part(b"x", "a.txt"))
    assert_openai_error(too_many, 400, code="invalid_request")
    assert client.get("/v1/files").json()["data"] == []


def test_list_bad_limit_is_rejected(client):
    for limit in ("0", "10001", "-1", "x", "1.5", ""):
        response = client.get("/v1/files", params={"limit": limit})
        assert_openai_error(response, 400, code="invalid_request", param="limit")
    assert client.get("/v1/files", params={"limit": "10000"}).status_code == 200
    assert client.get("/v1/files", params={"limit": "1"}).status_code == 200


def test_list_bad_order_or_purpose_is_rejected(client):
    for order in ("up", "ASC", "", "random"):
        response = client.get("/v1/files", params={"order": order})
        assert_openai_error(response, 400, code="invalid_request", param="order")
    for purpose in ("nope", "ASSISTANTS", "\x00"):
        response = client.get("/v1/files", params={"purpose": purpose})
        assert_openai_error(response, 400, code="invalid_request", param="purpose")


def test_list_bad_after_is_rejected(client):
    for after in ("../x", "file-\x00", "a" * 129, "file-é", "file-a b", ""):
        response = client.get("/v1/files", params={"after": after})
        assert_openai_error(response, 400, code="invalid_request", param="after")
    unknown_but_well_formed = client.get("/v1/files", params={"after": "file-DoesNotExist123"})
    assert unknown_but_well_formed.status_code == 200


def test_unknown_ids_are_404_on_retrieve_content_delete(client):
    existing = upload(client, b"keep me", "keep.txt")
    for odd in ODD_IDS:
        for method, path in (("GET", ""), ("GET", "/content"), ("HEAD", "/content"), ("DELETE", "")):
            response = client.request(method, f"/v1/files/{odd}{path}")
            if method == "HEAD":
                assert response.status_code == 404, (odd, method, path)
                continue
            assert_openai_error(response, 404, code="not_found", param="file_id")
    # an encoded slash turns into a path that no route matches: still a 404 in the envelope
    for path in ("..%2F..%2Fetc%2Fpasswd", f"..%2F{existing['id']}", f"{existing['id']}%2F..%2F..%2Fx"):
        assert_openai_error(client.get(f"/v1/files/{path}"), 404, code="not_found")
    assert client.get(f"/v1/files/{existing['id']}/content").content == b"keep me"
    assert [f["id"] for f in client.get("/v1/files").json()["data"]] == [existing["id"]]


def test_unknown_ids_sent_raw_are_404(server, tenant, client):
    """Paths httpx would normalise, sent byte for byte: dot segments and raw non-ASCII."""
    existing = upload(client, b"keep me", "keep.txt")
    targets = [
        b"/v1/files/..",
        b"/v1/files/../files",
        b"/v1/files/./" + existing["id"].encode() + b"/../x",
        b"/v1/files/file-x/../content",
        b"/v1/files/\xc3\xa9t\xc3\xa9",  # raw UTF-8 in the request line: the HTTP parser refuses it
    ]
    for target in targets:
        with RawConnection.open(server.url) as conn:
            conn.send(
                b"GET "
                + target
                + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + tenant.key.encode()
                + b"\r\n\r\n"
            )
            response = conn.response()
            assert response.status in (400, 404), (target, response.status)
            assert b"keep me" not in response.body
            assert_no_traceback(response.body.decode("utf-8", "replace"))


def test_delete_twice_is_404(client):
    created = upload(client, b"once", "once.txt")
    first = client.delete(f"/v1/files/{created['id']}")
    assert first.status_code == 200
    assert first.json() == {"id": created["id"], "object": "file", "deleted": True}
    assert_openai_error(client.delete(f"/v1/files/{created['id']}"), 404, code="not_found", param="file_id")
    assert_openai_error(client.get(f"/v1/files/{created['id']}"), 404, code="not_found")


def test_unknown_route_and_wrong_method_are_rejected_in_envelope(client):
    for path in ("/nope", "/v1/nope", "/v2/files", "/v1/files/file-x/content/extra", "/v1/openai/v1/nope"):
        assert_openai_error(client.get(path), 404, code="not_found")
    response = client.put("/v1/files", content=b"x")
    assert_openai_error(response, 405, code="method_not_allowed")
    assert "allow" in response.headers
    assert_openai_error(client.post("/v1/files/file-abc"), 405, code="method_not_allowed")


def test_connection_stays_usable_after_each_error(server, tenant):
    """Every refusal leaves the keep-alive connection open: a second request on the same socket works."""
    key = auth(tenant.key)
    form = MULTIPART
    bad_requests = [
        ("GET", "/v1/files?limit=0", [key], b""),
        ("GET", "/v1/files?order=sideways", [key], b""),
        ("GET", "/v1/files?after=..", [key], b""),
        ("GET", "/v1/files/file-DoesNotExist123", [key], b""),
        ("GET", "/v1/files/file-DoesNotExist123/content", [key], b""),
        ("DELETE", "/v1/files/file-DoesNotExist123", [key], b""),
        ("GET", "/nope", [key], b""),
        ("PUT", "/v1/files", [key], b"x"),
        ("GET", "/v1/files", [], b""),
        ("GET", "/v1/files", [("Authorization", "Bearer wrong")], b""),
        ("POST", "/v1/files", [key, ("Content-Type", "application/json")], b"{}"),
        ("POST", "/v1/files", [key, ("Content-Type", form)], upload_body(b"x", purpose="nope")),
        ("POST", "/v1/files", [key, ("Content-Type", form)], upload_body(b"x", b"")),
        ("POST", "/v1/files", [key, ("Content-Type", form)], b"garbage" * 100),
        ("POST", "/v1/files", [key, ("Content-Type", form)], multipart(field_part("purpose", "assistants"))),
        (
            "POST",
            "/v1/files",
            [key, ("Content-Type", form)],
            multipart(field_part("purpose", "assistants"), file_part(b"a", "a"), file_part(b"b", "b")),
        ),
        ("POST", "/v1/files", [key, ("Content-Type", form)], upload_body(b"x" * 200_000, purpose="nope")),
    ]
    with RawConnection.open(server.url) as conn:
        for method, target, headers, body in bad_requests:
            conn.request(method, target, headers=headers, body=body)
            response = conn.response()
            assert 400 <= response.status < 500, (method, target, response.status)
            assert (response.header("connection") or "").lower() != "close", (method, target)
            assert_no_traceback(response.body.decode("utf-8", "replace"))
            conn.request("GET", "/v1/files", headers=[key])
            follow_up = conn.response()
            assert follow_up.status == 200, (method, target, follow_up.status)
            assert follow_up.body.startswith(b'{"object":"list"'), (method, target)
        assert not conn.server_closed(wait=0.1)


def test_httpx_client_reuses_its_connection_after_errors(server, tenant):
    opened = []

    class CountingTransport(__import__("httpx").HTTPTransport):
        def handle_request(self, request):
            response = super().handle_request(request)
            stream = response.extensions.get("network_stream")
            if stream is not None and all(stream is not s for s in opened):
                opened.append(stream)
            return response

    with server.client(tenant, transport=CountingTransport()) as http:
        for _ in range(3):
            assert http.get("/v1/files?limit=0").status_code == 400
            assert http.get("/v1/files/file-nope").status_code == 404
            assert (
                http.post("/v1/files", data={"purpose": "x"}, files={"file": ("a", b"a")}).status_code == 400
            )
            assert http.get("/nope").status_code == 404
            assert http.get("/v1/files").status_code == 200
    assert len(opened) == 1, f"{len(opened)} connections were opened for one client"


def test_error_bodies_never_carry_tracebacks(server, tenant, client):
    responses = [
        client.get("/v1/files?limit=abc"),
        client.get("/v1/files/%00"),
        client.post("/v1/files", content=b"\x00" * 1000, headers={"Content-Type": MULTIPART}),
        client.post(
            "/v1/files", content=b"--x\r\n", headers={"Content-Type": "multipart/form-data; boundary=x"}
        ),
        client.post("/v1/files", content=b"", headers={"Content-Type": MULTIPART}),
    ]
    for response in responses:
        assert 400 <= response.status_code < 500, response.text
        assert_no_traceback(response.text)
        assert set(response.json()) == {"error"}
    # a Content-Length that is not a number (sent raw: httpx refuses to)
    body = upload_body(b"x")
    with RawConnection.open(server.url) as conn:
        conn.send(
            b"POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + tenant.key.encode()
            + b"\r\nContent-Type: "
            + MULTIPART.encode()
            + b"\r\nContent-Length: abc\r\n\r\n"
            + body
        )
        response = conn.response()
    assert response.status == 400
    assert_no_traceback(response.body.decode("utf-8", "replace"))


def test_errors_are_the_same_under_both_prefixes(client):
    for prefix in ("/v1", "/v1/openai/v1"):
        assert_openai_error(client.get(f"{prefix}/files?limit=0"), 400, param="limit")
        assert_openai_error(client.get(f"{prefix}/files/file-nope"), 404, code="not_found")
        bad_purpose = client.post(f"{prefix}/files", data={"purpose": "nope"}, files={"file": ("a", b"a")})
        assert_openai_error(bad_purpose, 400, param="purpose")
