"""API keys and tenants: who may call, and that one tenant's files are invisible to another."""

from __future__ import annotations

import asyncio
import time

from _support import RawConnection, assert_openai_error, upload

from cairn.compose import composed
from cairn.settings import Settings


async def _revoke_tenant_keys(settings: Settings, tenant: str) -> int:
    async with composed(settings) as composition:
        keys = composition.services.api_keys
        revoked = 0
        for record in await keys.list():
            if record.tenant == tenant and record.revoked_at is None:
                revoked += await keys.revoke(record.id)
        return revoked


PROTECTED = [
    ("GET", "/v1/files"),
    ("POST", "/v1/files"),
    ("GET", "/v1/files/file-abc"),
    ("GET", "/v1/files/file-abc/content"),
    ("DELETE", "/v1/files/file-abc"),
    ("GET", "/v1/openai/v1/files"),
    ("GET", "/v1/providers"),
    ("GET", "/v1/models"),
    ("POST", "/v1/models"),
    ("DELETE", "/v1/models/my-model"),
    ("GET", "/v1/chat/completions"),
    ("GET", "/v1/chat/completions/chatcmpl-abc/messages"),
    ("DELETE", "/v1/chat/completions/chatcmpl-abc"),
]


def test_missing_key_is_401_with_bearer_challenge(server):
    with server.client() as anonymous:
        for method, path in PROTECTED:
            response = anonymous.request(method, path)
            error = assert_openai_error(response, 401, code="invalid_api_key")
            assert error["type"] == "authentication_error"
            assert response.headers["www-authenticate"] == "Bearer", (method, path)
        head = anonymous.head("/v1/files/file-abc/content")
        assert head.status_code == 401
        assert head.headers["www-authenticate"] == "Bearer"
        # the public routes stay public
        assert anonymous.get("/health").json() == {"status": "ok"}
        assert anonymous.get("/v1/health").json() == {"status": "OK"}
        assert anonymous.get("/v1/version").status_code == 200


def test_wrong_key_is_401(server, tenant):
    almost = tenant.key[:-1] + ("A" if tenant.key[-1] != "A" else "B")
    for key in ("wrong", "cairn-000000000000-" + "x" * 43, almost, tenant.key + "x", tenant.key.upper()):
        with server.client() as http:
            response = http.get("/v1/files", headers={"Authorization": f"Bearer {key}"})
            assert_openai_error(response, 401, code="invalid_api_key")
            assert response.headers["www-authenticate"] == "Bearer"


def test_malformed_authorization_header_is_401(server, tenant):
    headers = [
        tenant.key,  # no scheme
        f"Basic {tenant.key}",
        f"Token {tenant.key}",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        f"Bearer{tenant.key}",
        f"Bearer\t{tenant.key}x",
        f"Bearer {tenant.key} {tenant.key}",
        "",
    ]
    with RawConnection.open(server.url) as conn:  # byte for byte: httpx refuses some of these
        for value in headers:
            conn.request("GET", "/v1/files", headers=[("Authorization", value)])
            response = conn.response()
            assert response.status == 401, repr(value)
            assert response.header("www-authenticate") == "Bearer", repr(value)
            assert b'"code":"invalid_api_key"' in response.body


def test_bearer_scheme_is_case_insensitive(server, tenant):
    with server.client() as http:
        for scheme in ("Bearer", "bearer", "BEARER"):
            assert (
                http.get("/v1/files", headers={"Authorization": f"{scheme} {tenant.key}"}).status_code == 200
            )


def test_other_tenants_files_are_invisible(server):
    alice, bob = server.new_tenant("alice"), server.new_tenant("bob")
    with server.client(alice) as a, server.client(bob) as b:
        secret = upload(a, b"alice's secret", "secret.txt")
        bobs = upload(b, b"bob's file", "bob.txt")
        path = f"/v1/files/{secret['id']}"
        assert_openai_error(b.get(path), 404, code="not_found", param="file_id")
        assert_openai_error(b.get(f"{path}/content"), 404, code="not_found", param="file_id")
        assert_openai_error(b.get(f"/v1/openai/v1/files/{secret['id']}"), 404, code="not_found")
        assert b.head(f"{path}/content").status_code == 404
        ranged = b.get(f"{path}/content", headers={"Range": "bytes=0-3"})
        assert ranged.status_code == 404
        assert b.get(f"{path}/content", headers={"If-None-Match": "*"}).status_code == 404
        assert_openai_error(b.delete(path), 404, code="not_found", param="file_id")
        assert [f["id"] for f in b.get("/v1/files").json()["data"]] == [bobs["id"]]
        assert b.get("/v1/files", params={"purpose": "assistants"}).json()["data"][0]["id"] == bobs["id"]
        # a cursor taken from another tenant's id reveals nothing either
        after = b.get("/v1/files", params={"after": secret["id"], "order": "asc"}).json()
        assert secret["id"] not in [f["id"] for f in after["data"]]
        # the 404 is the same as for an id that never existed
        never = b.get("/v1/files/file-DoesNotExist123").json()["error"]
        theirs = b.get(path).json()["error"]
        assert {k: v for k, v in theirs.items() if k != "message"} == {
            k: v for k, v in never.items() if k != "message"
        }
        # alice still has her file, untouched by bob's delete attempt
        assert a.get(f"{path}/content").content == b"alice's secret"
        assert [f["id"] for f in a.get("/v1/files").json()["data"]] == [secret["id"]]
        assert_openai_error(a.get(f"/v1/files/{bobs['id']}"), 404)


def test_two_keys_of_one_tenant_share_files(server):
    first = server.new_tenant("team")
    second = server.new_tenant("team")
    assert first.key != second.key
    with server.client(first) as a, server.client(second) as b:
        created = upload(a, b"shared", "s.txt")
        assert b.get(f"/v1/files/{created['id']}/content").content == b"shared"


def test_revoked_key_stops_working(server):
    doomed = server.new_tenant("doomed")
    survivor = server.new_tenant("survivor")
    bearer = ("Authorization", f"Bearer {doomed.key}")
    with (
        server.client(doomed) as http,
        server.client(survivor) as other,
        RawConnection.open(server.url) as conn,
    ):
        created = upload(http, b"x", "x.txt")
        conn.request("GET", "/v1/files", headers=[bearer])
        assert conn.response().status == 200
        assert asyncio.run(_revoke_tenant_keys(server.settings, "doomed")) == 1
        statuses = []
        for _ in range(15):  # ~1.5 s
            statuses.append(http.get("/v1/files").status_code)
            if statuses[-1] == 401:
                break
            time.sleep(0.1)
        assert statuses[-1] == 401, statuses
        assert_openai_error(http.get(f"/v1/files/{created['id']}"), 401, code="invalid_api_key")
        upload_attempt = http.post("/v1/files", data={"purpose": "assistants"}, files={"file": ("y", b"y")})
        assert upload_attempt.status_code == 401
        # a connection opened (and authenticated) before the revocation gets no grace either
        conn.request("GET", "/v1/files", headers=[bearer])
        assert conn.response().status == 401
        assert other.get("/v1/files").status_code == 200


def test_open_mode_serves_without_a_key(make_server):
    live = make_server(keyed=False)
    with live.client() as anonymous:
        created = upload(anonymous, b"open", "open.txt")
        assert anonymous.get(f"/v1/files/{created['id']}/content").content == b"open"
        assert [f["id"] for f in anonymous.get("/v1/files").json()["data"]] == [created["id"]]
        # any bearer token is the same single open tenant
        other = anonymous.get("/v1/files", headers={"Authorization": "Bearer anything"})
        assert [f["id"] for f in other.json()["data"]] == [created["id"]]
        assert anonymous.get("/v1/providers").status_code == 200


def test_first_key_ends_open_mode(make_server):
    live = make_server(keyed=False)
    with live.client() as anonymous:
        assert anonymous.get("/v1/files").status_code == 200
        tenant = live.new_tenant()
        statuses = []
        for _ in range(25):  # open mode is re-read at most once a second
            statuses.append(anonymous.get("/v1/files").status_code)
            if statuses[-1] == 401:
                break
            time.sleep(0.1)
        assert statuses[-1] == 401, statuses
    with live.client(tenant) as keyed:
        assert keyed.get("/v1/files").status_code == 200


def test_tenant_isolation_holds_under_both_prefixes(server):
    alice, bob = server.new_tenant(), server.new_tenant()
    with server.client(alice) as a, server.client(bob) as b:
        for prefix in ("/v1", "/v1/openai/v1"):
            form = {"data": {"purpose": "assistants"}, "files": {"file": ("a", b"a")}}
            created = a.post(f"{prefix}/files", **form).json()
            assert b.get(f"{prefix}/files/{created['id']}").status_code == 404, prefix
            assert b.delete(f"{prefix}/files/{created['id']}").status_code == 404, prefix
            assert b.get(f"{prefix}/files").json()["data"] == [], prefix
