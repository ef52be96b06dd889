"""The ``ApiKeyRows`` contract (``core/ports/keys.py``), on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets

import pytest
from _adapters import on

from cairn.core.ports.keys import ApiKeyRows
from cairn.core.records import ApiKeyRecord

pytestmark = [pytest.mark.anyio, on("sqlite", "postgres")]

NOW = 1_800_000_000


def key(tenant: str = "t") -> ApiKeyRecord:
    return ApiKeyRecord(
        id="key-" + secrets.token_hex(8),
        tenant=tenant,
        key_hash=secrets.token_hex(32),
        created_at=NOW,
        revoked_at=None,
    )


async def test_an_active_key_is_found_by_its_hash_and_a_revoked_one_is_not(key_rows: ApiKeyRows) -> None:
    first, second = key("alice"), key("bob")
    for k in (first, second):
        await key_rows.insert_api_key(k)
    assert await key_rows.find_api_key(first.key_hash) == first
    assert await key_rows.find_api_key(secrets.token_hex(32)) is None
    assert await key_rows.revoke_api_key(first.id, NOW + 1) is True
    assert await key_rows.find_api_key(first.key_hash) is None
    assert await key_rows.find_api_key(second.key_hash) == second


async def test_revoking_is_false_for_a_revoked_or_unknown_key(key_rows: ApiKeyRows) -> None:
    k = key()
    await key_rows.insert_api_key(k)
    assert await key_rows.revoke_api_key(k.id, NOW + 1) is True
    assert await key_rows.revoke_api_key(k.id, NOW + 2) is False
    assert await key_rows.revoke_api_key("key-unknown", NOW) is False
    listed = {r.id: r.revoked_at for r in await key_rows.list_api_keys()}
    assert listed == {k.id: NOW + 1}  # the first revocation stands


async def test_there_are_keys_once_one_was_created_even_when_all_are_revoked(key_rows: ApiKeyRows) -> None:
    assert await key_rows.has_api_keys() is False
    k = key()
    await key_rows.insert_api_key(k)
    assert await key_rows.has_api_keys() is True
    await key_rows.revoke_api_key(k.id, NOW)
    assert await key_rows.has_api_keys() is True
