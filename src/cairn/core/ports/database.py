"""The database that holds the rows: its schema and its lifetime. Used by the composer and the health
check; implemented by ``adapters.sql.engine``."""

from __future__ import annotations

from typing import Protocol


class Database(Protocol):
    async def migrate(self) -> None:
        """Bring the schema to the newest version. Safe to call from several processes at once."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``Unavailable`` if the store cannot answer."""
