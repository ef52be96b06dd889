"""Principals, tenants and API keys.

Keys look like ``cairn-<key id>-<secret>``. Only the sha256 of the whole key is stored: the secret has
256 bits of entropy, so a fast hash is enough and lookups can go by hash. Until the first key is ever
created, Cairn serves one open tenant (``OPEN_TENANT``), and only on a loopback address; revoking every
key later does not reopen it.
Verified keys are remembered for ``KEY_CACHE_SECONDS``, so a revocation by ``cairn keys`` in another
process takes effect within that time.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import InvalidInput, Unauthenticated
from .ports.keys import ApiKeyRows
from .records import ApiKeyRecord

OPEN_TENANT = "default"
KEY_PREFIX = "cairn-"
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
OPEN_MODE_RECHECK_SECONDS = 1.0
KEY_CACHE_SECONDS = 1.0
KEY_CACHE_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    key_id: str | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def validate_tenant(name: str) -> str:
    if not TENANT_PATTERN.fullmatch(name):
        raise InvalidInput(
            "Tenant names are 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit.",
            param="tenant",
        )
    return name


def is_loopback_host(host: str) -> bool:
    """``localhost``, a name under it (browsers resolve those to loopback themselves) or a loopback IP."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiKeys:
    """Creates, lists, revokes and verifies API keys."""

    def __init__(
        self, rows: ApiKeyRows, *, allow_open_mode: bool = True, clock: Callable[[], float] = time.time
    ) -> None:
        self._rows = rows
        self._allow_open_mode = allow_open_mode
        self._clock = clock
        self._open_mode_checked_at = float("-inf")
        self._open_mode = False
        self._verified: dict[str, tuple[float, Principal]] = {}

    async def create(self, tenant: str) -> tuple[str, ApiKeyRecord]:
        """Returns the key (shown once, never stored) and its stored record."""
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}-{secrets.token_urlsafe(32)}"
        record = ApiKeyRecord(
            id=key_id,
            tenant=validate_tenant(tenant),
            key_hash=hash_key(key),
            created_at=int(self._clock()),
            revoked_at=None,
        )
        await self._rows.insert_api_key(record)
        return key, record

    async def list(self) -> list[ApiKeyRecord]:
        return await self._rows.list_api_keys()

    async def revoke(self, key_id: str) -> bool:
        return await self._rows.revoke_api_key(key_id, int(self._clock()))

    async def open_mode(self) -> bool:
        """True while open mode is allowed and no key was ever created. Re-read at most once a second
        until it turns false (for good), so a key created by ``cairn keys`` in another process closes
        the server within a second."""
        if not self._allow_open_mode:
            return False
        now = time.monotonic()
        if self._open_mode_checked_at == float("-inf") or (
            self._open_mode and now - self._open_mode_checked_at >= OPEN_MODE_RECHECK_SECONDS
        ):
            self._open_mode = not await self._rows.has_api_keys()
            self._open_mode_checked_at = now
        return self._open_mode

    async def authenticate(self, authorization: str | None) -> Principal:
        if await self.open_mode():
            return Principal(tenant=OPEN_TENANT, key_id=None)
        if not authorization:
            raise Unauthenticated("Missing API key. Send it as 'Authorization: Bearer <key>'.")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("Malformed Authorization header. Expected 'Bearer <key>'.")
        key_hash = hash_key(token)
        now = time.monotonic()
        cached = self._verified.get(key_hash)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = await self._rows.find_api_key(key_hash)
        if record is None:
            self._verified.pop(key_hash, None)
            raise Unauthenticated("Invalid API key.")
        if len(self._verified) >= KEY_CACHE_ENTRIES:
            self._verified.clear()
        principal = Principal(tenant=record.tenant, key_id=record.id)
        self._verified[key_hash] = (now + KEY_CACHE_SECONDS, principal)
        return principal
