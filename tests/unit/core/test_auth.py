from __future__ import annotations

import pytest

from cairn.core import auth
from cairn.core.auth import OPEN_TENANT, ApiKeys, hash_key, is_loopback_host
from cairn.core.errors import InvalidInput, Unauthenticated
from cairn.core.ports.keys import ApiKeyRows

pytestmark = pytest.mark.anyio


async def test_open_mode_until_a_key_exists(key_rows: ApiKeyRows, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "OPEN_MODE_RECHECK_SECONDS", 0.0)
    keys = ApiKeys(key_rows)
    assert (await keys.authenticate(None)).tenant == OPEN_TENANT
    key, record = await keys.create("acme")
    with pytest.raises(Unauthenticated):
        await keys.authenticate(None)
    principal = await keys.authenticate(f"Bearer {key}")
    assert (principal.tenant, principal.key_id) == ("acme", record.id)


async def test_only_the_hash_is_stored(key_rows: ApiKeyRows) -> None:
    key, record = await ApiKeys(key_rows).create("acme")
    assert record.key_hash == hash_key(key) and key not in record.key_hash
    stored = await key_rows.list_api_keys()
    assert [k.key_hash for k in stored] == [hash_key(key)]


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Basic abc", "Bearer cairn-nope", "token"])
async def test_bad_credentials_are_refused(key_rows: ApiKeyRows, header: str) -> None:
    keys = ApiKeys(key_rows)
    await keys.create("acme")
    with pytest.raises(Unauthenticated):
        await keys.authenticate(header)


async def test_revoked_key_stops_working(key_rows: ApiKeyRows, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "OPEN_MODE_RECHECK_SECONDS", 0.0)
    monkeypatch.setattr(auth, "KEY_CACHE_SECONDS", 0.0)
    keys = ApiKeys(key_rows)
    key, record = await keys.create("acme")
    await keys.authenticate(f"Bearer {key}")
    assert await keys.revoke(record.id)
    assert not await keys.revoke(record.id)
    with pytest.raises(Unauthenticated):
        await keys.authenticate(f"Bearer {key}")


@pytest.mark.parametrize("name", ["", "-x", "a/b", "x" * 65, "ü", "a b"])
async def test_bad_tenant_names_are_refused(key_rows: ApiKeyRows, name: str) -> None:
    with pytest.raises(InvalidInput):
        await ApiKeys(key_rows).create(name)


def test_loopback_detection() -> None:
    assert all(map(is_loopback_host, ["127.0.0.1", "127.8.9.1", "::1", "localhost"]))
    assert not any(map(is_loopback_host, ["0.0.0.0", "::", "10.0.0.1", "example.com", "192.168.1.1"]))


async def test_revoking_every_key_does_not_reopen(
    key_rows: ApiKeyRows, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "OPEN_MODE_RECHECK_SECONDS", 0.0)
    keys = ApiKeys(key_rows)
    _, record = await keys.create("acme")
    assert await keys.revoke(record.id)
    assert not await keys.open_mode()
    with pytest.raises(Unauthenticated):
        await keys.authenticate(None)


async def test_open_mode_is_never_allowed_off_loopback(key_rows: ApiKeyRows) -> None:
    keys = ApiKeys(key_rows, allow_open_mode=False)
    assert not await keys.open_mode()
    with pytest.raises(Unauthenticated):
        await keys.authenticate(None)
